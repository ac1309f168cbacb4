"""Sans-IO rate limiters (the caller passes the clock): log lines per reason, failed logins.

:class:`LogLimiter` lets ``burst`` lines per key through in each ``window`` seconds and counts
the rest, so the caller can write one summary line ("N more like this") when the window closes.
:class:`FailureBan` counts failures per source in a sliding minute and bans a source that
exceeds the budget. Both tables are bounded: an attacker with many keys or addresses evicts the
oldest entries instead of growing memory.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

DEFAULT_WINDOW = 10.0
DEFAULT_BURST = 5
DEFAULT_MAX_KEYS = 256
OVERFLOW_KEY = "(other)"
EVICT_SCAN = 32


@dataclass(slots=True)
class _Window:
    start: float
    passed: int = 0
    suppressed: int = 0


class LogLimiter:
    """Per key: ``burst`` admissions per ``window`` seconds; the rest are counted for a summary."""

    def __init__(
        self,
        window: float = DEFAULT_WINDOW,
        burst: int = DEFAULT_BURST,
        max_keys: int = DEFAULT_MAX_KEYS,
    ) -> None:
        self.window = window
        self.burst = burst
        self.max_keys = max_keys
        self._keys: dict[str, _Window] = {}

    def admit(self, key: str, now: float) -> tuple[bool, int]:
        """``(log_this_one, suppressed_in_the_previous_window)`` for one event under ``key``."""
        w = self._keys.get(key)
        if w is None:
            if len(self._keys) >= self.max_keys:
                # Keys are reasons, a small set in practice; a flood of distinct ones shares one.
                key = OVERFLOW_KEY
                w = self._keys.get(key)
            if w is None:
                w = self._keys[key] = _Window(now)
        carried = 0
        if now - w.start >= self.window:
            carried = w.suppressed
            w.start, w.passed, w.suppressed = now, 0, 0
        if w.passed < self.burst:
            w.passed += 1
            return True, carried
        w.suppressed += 1
        return False, carried

    def due(self, now: float) -> list[tuple[str, int]]:
        """Keys whose window ended with suppressed events: ``(key, count)``; they are reset."""
        out: list[tuple[str, int]] = []
        for key, w in list(self._keys.items()):
            if now - w.start < self.window:
                continue
            if w.suppressed:
                out.append((key, w.suppressed))
            del self._keys[key]
        return out

    def next_due(self) -> float | None:
        """When the earliest window with suppressed events ends (for the caller's timer)."""
        ends = [w.start + self.window for w in self._keys.values() if w.suppressed]
        return min(ends, default=None)


class FailureBan:
    """Failed attempts per source: more than ``budget`` in ``period`` bans it for ``ban`` s."""

    def __init__(
        self, budget: int, ban: float, period: float = 60.0, max_sources: int = 4096
    ) -> None:
        self.budget = budget
        self.ban = ban
        self.period = period
        self.max_sources = max_sources
        # source -> (period start, failures in it, banned until); oldest first for eviction.
        self._table: OrderedDict[str, tuple[float, int, float]] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.budget > 0

    def __len__(self) -> int:
        return len(self._table)

    def banned(self, source: str, now: float) -> bool:
        """True while ``source`` is refused (even a right password is answered as a failure)."""
        entry = self._table.get(source)
        return entry is not None and entry[2] > now

    def failed(self, source: str, now: float) -> bool:
        """Count one failure; True when this one starts a ban."""
        if not self.enabled:
            return False
        start, count, until = self._table.pop(source, (now, 0, 0.0))
        if now - start >= self.period:
            start, count = now, 0
        count += 1
        started = False
        if count >= self.budget and until <= now:
            until, started = now + self.ban, True
        self._table[source] = (start, count, until)
        while len(self._table) > self.max_sources:
            self._evict(now)
        return started

    def _evict(self, now: float) -> None:
        # Prefer an entry that is not banned among the oldest few (a bounded scan), else the
        # oldest: a flood of fresh addresses must not lift the bans of the addresses it follows.
        for i, (source, entry) in enumerate(self._table.items()):
            if entry[2] <= now or i >= EVICT_SCAN:
                del self._table[source]
                return
