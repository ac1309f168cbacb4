"""Connection caps per worker: open connections overall and per source address.

A connection is counted from accept until its transport closes, whichever protocol owns it by
then (handshake, pipe, tunnel session): the cap keeps the transports and drops closed ones in a
sweep at most once a second (every ``SWEEP_EVERY`` s while full), so the accept path stays O(1)
between sweeps.
"""

from __future__ import annotations

import asyncio
import resource
import time

from burrow.config.limits import Limits

SWEEP_EVERY = 0.1
# Descriptors kept for everything that is not a public connection: listeners, the bus, handoff
# sockets, tunnel-client dials, log files.
FD_RESERVE = 64
# Closed transports are dropped at least this often even below the caps (memory, not counting).
SWEEP_IDLE = 1.0


class ConnectionCap:
    """Admits accepted transports while under ``max_connections`` and the per-source cap."""

    def __init__(self, limits: Limits) -> None:
        self.total = limits.max_connections
        # Refusing at the cap (with a log line) beats running out of descriptors: libuv then
        # drops new connections silently (it keeps a spare fd to accept and close them).
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        self.clamped_from: int | None = None
        if soft != resource.RLIM_INFINITY:
            budget = max(1, soft - FD_RESERVE)
            if not self.total or self.total > budget:
                self.clamped_from, self.total = self.total, budget
        self.per_source = limits.max_connections_per_source
        self._open: set[asyncio.BaseTransport] = set()
        self._by_source: dict[str, set[asyncio.BaseTransport]] = {}
        self._swept = 0.0

    def __len__(self) -> int:
        return len(self._open)

    def admit(self, transport: asyncio.BaseTransport, source: str) -> str | None:
        """Count ``transport``; returns why it is refused (then it is not counted), or None."""
        if not self.total and not self.per_source:
            return None
        now = time.monotonic()
        full = bool(self.total) and len(self._open) >= self.total
        if now - self._swept >= (SWEEP_EVERY if full else SWEEP_IDLE):
            self._swept = now
            self._sweep()
        mine = self._by_source.get(source)
        if self.per_source and mine is not None and len(mine) >= self.per_source:
            # This source's own closed connections are freed now (at most per_source checks).
            for t in [t for t in mine if t.is_closing()]:
                mine.discard(t)
                self._open.discard(t)
            if len(mine) >= self.per_source:
                return f"source has {self.per_source} open connections (max_connections_per_source)"
        if self.total and len(self._open) >= self.total:
            return f"worker has {self.total} open connections (max_connections)"
        self._open.add(transport)
        if self.per_source:
            if mine is None:
                mine = self._by_source[source] = set()
            mine.add(transport)
        return None

    def _sweep(self) -> None:
        closed = [t for t in self._open if t.is_closing()]
        for t in closed:
            self._open.discard(t)
        if closed:
            # Every per-source entry is also in _open, so this is bounded by max_connections.
            for source in list(self._by_source):
                live = {t for t in self._by_source[source] if not t.is_closing()}
                if live:
                    self._by_source[source] = live
                else:
                    del self._by_source[source]
