"""Idle timeout for routed connections: a coarse sweep over last-activity stamps.

A routed connection is a :class:`~burrow.net.pipe.StreamPipe`; :class:`IdlePipe` stamps a
coarse clock (a module attribute the sweep advances, no syscall) on every read batch and every
batch written, never per byte. One loop timer per worker walks the watched pipes every ``tick``
(a quarter of the timeout, at most 30 s) and closes those silent for ``timeout``; a connection
is closed between ``timeout`` and ``timeout + tick`` after its last byte.
"""

from __future__ import annotations

import asyncio
import logging

from burrow.common.logfmt import event
from burrow.net.mux_stream import MuxStream
from burrow.net.pipe import StreamPipe

log = logging.getLogger("burrow.idle")

MAX_TICK = 30.0

# The coarse clock pipes stamp, advanced by the sweeps (a worker has one IdleWatch): a module
# attribute, so a pipe keeps no reference to its watch (8 B a slot, per open stream).
_now = 0.0


class IdleWatch:
    """The worker's idle sweeper; ``timeout`` 0 turns it off."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.tick = min(timeout / 4, MAX_TICK) if timeout > 0 else 0.0
        self._pipes: set[IdlePipe] = set()
        self._timer: asyncio.TimerHandle | None = None
        self.closed = 0

    @property
    def now(self) -> float:
        """The coarse clock: loop time at the last sweep (or at the first watched pipe)."""
        return _now

    @now.setter
    def now(self, value: float) -> None:
        global _now
        _now = value

    def pipe(self, stream: MuxStream) -> StreamPipe:
        """A pipe for ``stream``, watched when the timeout is on."""
        if self.timeout <= 0:
            return StreamPipe(stream)
        p = IdlePipe(self, stream)
        self.watch(p)
        return p

    def watch(self, p: IdlePipe) -> None:
        """Sweep ``p`` too (a no-op when the timeout is off)."""
        if self.timeout <= 0:
            return
        if self._timer is None:
            loop = asyncio.get_running_loop()
            self.now = loop.time()
            self._timer = loop.call_later(self.tick, self._sweep)
        p.last = self.now  # the clock may only now have started
        self._pipes.add(p)

    def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        self.now = now = loop.time()
        idle = []
        for p in list(self._pipes):
            if p.closed:
                self._pipes.discard(p)
            elif now - p.last >= self.timeout:
                idle.append(p)
        for p in idle:
            self._pipes.discard(p)
            p.close()
        if idle:
            self.closed += len(idle)
            event(log, logging.INFO, "pipe.idle_closed", count=len(idle), seconds=self.timeout)
        self._timer = loop.call_later(self.tick, self._sweep) if self._pipes else None

    def close(self) -> None:
        """Stop sweeping (worker shutdown)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class IdlePipe(StreamPipe):
    """A StreamPipe that records when bytes last moved, for :class:`IdleWatch`."""

    # One slot: the clock is the module's, and a pipe whose connection is lost is ``closed``.
    __slots__ = ("last",)

    def __init__(self, watch: IdleWatch, stream: MuxStream) -> None:
        self.last = watch.now
        super().__init__(stream)

    def __call__(self, data: bytes) -> None:  # data_received: StreamPipe
        self.last = _now
        super().__call__(data)

    def stream_data(self, data: bytes | memoryview) -> None:
        self.last = _now
        super().stream_data(data)

    def stream_datav(self, parts: list[bytes | memoryview]) -> None:
        self.last = _now
        super().stream_datav(parts)
