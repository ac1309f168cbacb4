"""Throttled rejection logging: a flood of bad connections writes a bounded number of lines.

Each reason gets a few lines per window (burrow.common.ratelimit.LogLimiter); the rest are
counted and summarised in one line when the window ends ("N more like this in the last 10 s").
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any

from burrow.common.logfmt import event
from burrow.common.ratelimit import LogLimiter

_VARIABLE = re.compile(r"0x[0-9a-f]+|\d+|'[^']*'|\"[^\"]*\"")


def reason_key(name: str, reason: str) -> str:
    """The limiter key: the event and its reason with numbers and quoted values taken out."""
    return f"{name} {_VARIABLE.sub('#', reason)[:60]}"


class RejectLog:
    """Logs rejections at ``level`` through a per-reason limiter; summaries on a loop timer."""

    def __init__(self, logger: logging.Logger, limiter: LogLimiter | None = None) -> None:
        self.logger = logger
        self.limiter = limiter if limiter is not None else LogLimiter()
        self._timer: asyncio.TimerHandle | None = None

    def __call__(self, level: int, name: str, reason: str, /, **fields: Any) -> None:
        """Log ``name`` with ``reason`` and ``fields`` unless this reason is over its budget."""
        if not self.logger.isEnabledFor(level):
            return
        key = reason_key(name, reason)
        ok, carried = self.limiter.admit(key, time.monotonic())
        if carried:
            self._summary(key, carried)
        if ok:
            event(self.logger, level, name, reason=reason, **fields)
        else:
            self._arm()

    def _summary(self, key: str, count: int) -> None:
        event(
            self.logger,
            logging.INFO,
            "log.suppressed",
            like=key,
            count=count,
            summary=f"{count:,} more like this in the last {self.limiter.window:g} s",
        )

    def _arm(self) -> None:
        if self._timer is not None:
            return
        when = self.limiter.next_due()
        if when is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._timer = loop.call_later(max(0.0, when - time.monotonic()) + 0.01, self._flush)

    def _flush(self) -> None:
        self._timer = None
        for key, count in self.limiter.due(time.monotonic()):
            self._summary(key, count)
        self._arm()
