"""IdleTimer: one loop timer per session, re-armed only when it fires.

Activity just records the loop time (no timer churn per datagram); when the timer fires it
either calls ``on_idle`` (a whole period passed with no activity) or re-arms for the new deadline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class IdleTimer:
    """Calls ``on_idle`` once ``timeout`` seconds pass with no :meth:`touch`."""

    __slots__ = ("_handle", "_last", "_loop", "_on_idle", "timeout")

    def __init__(self, timeout: float, on_idle: Callable[[], None]) -> None:
        self.timeout = timeout
        self._on_idle = on_idle
        self._last = 0.0
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        """Arm the timer from now."""
        # Kept: touch() runs per datagram, and get_running_loop() is a getpid() syscall on 3.11.
        self._loop = loop = asyncio.get_running_loop()
        self._last = loop.time()
        self._handle = loop.call_at(self._last + self.timeout, self._fire)

    def touch(self) -> None:
        """Record activity."""
        loop = self._loop
        self._last = (loop or asyncio.get_running_loop()).time()

    def cancel(self) -> None:
        """Disarm (idempotent)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _fire(self) -> None:
        self._handle = None
        loop = asyncio.get_running_loop()
        deadline = self._last + self.timeout
        if loop.time() >= deadline:
            self._on_idle()
            return
        self._handle = loop.call_at(deadline, self._fire)
