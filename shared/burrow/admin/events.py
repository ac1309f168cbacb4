"""Recent warnings and errors, for the dashboard's "recent errors" list (``/api/events``).

A bounded ring: the newest :data:`MAX_EVENTS` entries, each with a sequence number so a poller
asks only for what is new (``?since=N``). Fed by :class:`RingHandler` (the host's own WARNING
and ERROR log events: worker exits, reload failures, ...) and by whoever sees workers' counters
(:meth:`EventRing.add`). Thread-safe: written from the supervisor's loop (and its logging),
read from the admin server's thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

MAX_EVENTS = 200
# One entry never carries much: a few short fields, as the log line had them.
MAX_FIELDS = 12
MAX_VALUE_CHARS = 200


def _clip(value: Any) -> str | int | float | bool | None:
    if value is None or isinstance(value, bool | int | float):
        return value
    text = str(value)
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS] + "..."


class EventRing:
    """The newest ``size`` events; older ones are dropped (and counted)."""

    def __init__(self, size: int = MAX_EVENTS) -> None:
        self._lock = threading.Lock()
        self._ring: deque[dict[str, Any]] = deque(maxlen=size)
        self._seq = 0

    def add(
        self,
        level: str,
        name: str,
        fields: Mapping[str, Any] | None = None,
        source: str = "supervisor",
    ) -> None:
        """Record one event (``level``: "warning" or "error"; ``name`` as in the logs)."""
        items = list((fields or {}).items())[:MAX_FIELDS]
        clipped = {str(k)[:MAX_VALUE_CHARS]: _clip(v) for k, v in items}
        with self._lock:
            self._seq += 1
            self._ring.append(
                {"seq": self._seq, "time": time.time(), "level": level, "source": source,
                 "event": str(name)[:MAX_VALUE_CHARS], "fields": clipped}
            )  # fmt: skip

    def view(self, since: int = 0) -> dict[str, Any]:
        """``/api/events``: entries with ``seq > since``, oldest first, and the last ``seq``."""
        with self._lock:
            rows = [dict(e) for e in self._ring if e["seq"] > since]
            last = self._seq
            dropped = last - len(self._ring)
        return {"events": rows, "last": last, "dropped": dropped}


class RingHandler(logging.Handler):
    """A logging handler that copies WARNING and ERROR ``event()`` lines into a ring."""

    def __init__(self, ring: EventRing, source: str = "supervisor") -> None:
        super().__init__(level=logging.WARNING)
        self.ring = ring
        self.source = source

    def emit(self, record: logging.LogRecord) -> None:
        """Add ``record`` (its event name and structured fields) to the ring."""
        try:
            fields = getattr(record, "burrow_fields", None)
            self.ring.add(
                record.levelname.lower(),
                record.getMessage(),
                fields if isinstance(fields, dict) else None,
                self.source,
            )
        except Exception:  # noqa: BLE001 - logging must never raise into the caller
            self.handleError(record)
