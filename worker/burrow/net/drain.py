"""Waiting for in-flight work to end without polling: a connection count and a stream watch.

Both cost nothing on the data path: ``ConnCount`` is touched once per connection (open and
close), and ``streams_done`` only swaps a session's stream table for a watching one when a
drain starts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

from .mux import MuxConnection, MuxStream


class ConnCount:
    """Open connections of one service; ``wait_idle`` returns when the count reaches zero."""

    __slots__ = ("_idle", "n")

    def __init__(self) -> None:
        self.n = 0
        self._idle: asyncio.Event | None = None

    def opened(self) -> None:
        """One more connection is in flight."""
        self.n += 1

    def closed(self) -> None:
        """One connection ended."""
        self.n -= 1
        if self.n <= 0 and self._idle is not None:
            self._idle.set()

    async def wait_idle(self) -> None:
        """Return once no connection is open."""
        if self.n <= 0:
            return
        if self._idle is None:
            self._idle = asyncio.Event()
        await self._idle.wait()


class _WatchedStreams(dict[int, MuxStream]):
    """A session's stream table that calls its ``on_empty`` callbacks when the last one leaves."""

    def __init__(self, items: dict[int, MuxStream]) -> None:
        super().__init__(items)
        self.on_empty: list[Callable[[], None]] = []

    def pop(self, key: int, default: Any = None) -> Any:
        value = super().pop(key, default)
        if not self:
            self._fire()
        return value

    def clear(self) -> None:
        super().clear()
        self._fire()

    def _fire(self) -> None:
        for callback in self.on_empty:
            callback()


async def streams_done(conns: Iterable[MuxConnection]) -> None:
    """Return once every session in ``conns`` has no open stream (or is closed)."""
    waits: list[asyncio.Event] = []
    for conn in conns:
        if conn.closed or not conn.streams:
            continue
        idle = asyncio.Event()
        watched = conn.streams
        if not isinstance(watched, _WatchedStreams):  # two services may drain one pool
            watched = conn.streams = _WatchedStreams(conn.streams)
        watched.on_empty.append(idle.set)
        waits.append(idle)
    for idle in waits:
        await idle.wait()
