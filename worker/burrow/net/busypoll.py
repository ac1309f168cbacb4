"""Busy polling: after I/O, keep the event loop turning for a short window before it may sleep.

Why: on a virtual machine, a process that blocks in ``epoll_wait`` lets its vCPU halt, and
waking a halted vCPU costs tens of microseconds. Burrow's full path has three processes
(visitor, server, client), so a request/response paid six of those wake-ups: on the 2-core
benchmark VM that was ~+230 us of added median latency, the same as three empty uvloop
forwarders (BENCHMARKS.md, "Latency"). For ``window`` seconds after the last event a ready
callback keeps the loop polling (``epoll_wait`` with a zero timeout), and each turn calls
``sched_yield`` so any other runnable process on the CPU goes first. Linux guests' ``haltpoll``
cpuidle governor applies the same idea in the kernel.

Cost: up to ``window`` of CPU after each burst of activity, nothing while idle. When the
machine has fewer cores than busy processes the polling takes CPU from real work: on the 2-core
benchmark VM, with every hop on the same machine, it cost 20-30 % of bulk throughput and
connection rate. So it is off unless ``[burrow] busy_poll_us`` (or ``--busy-poll-us``) is set,
like HAProxy's ``busy-polling``.
"""

from __future__ import annotations

import asyncio
import os
import time

MAX_WINDOW_US = 10_000


class BusyPoll:
    """One per process: :meth:`poke` on every read; the loop spins ``window`` seconds after."""

    __slots__ = ("_last", "_loop", "_spinning", "window")

    def __init__(self) -> None:
        self.window = 0.0
        self._last = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._spinning = False

    def configure(self, loop: asyncio.AbstractEventLoop, window_us: int) -> None:
        """Enable for ``loop`` with a window of ``window_us`` microseconds (0 disables)."""
        self._loop = loop
        self.window = max(0, min(window_us, MAX_WINDOW_US)) / 1e6

    def poke(self) -> None:
        """Record activity: the loop keeps polling until ``window`` has passed without any."""
        if self.window:
            self._last = time.perf_counter()
            if not self._spinning and self._loop is not None:
                self._spinning = True
                self._loop.call_soon(self._turn)

    def _turn(self) -> None:
        if time.perf_counter() - self._last < self.window:
            os.sched_yield()
            self._loop.call_soon(self._turn)  # type: ignore[union-attr]
        else:
            self._spinning = False


BUSY_POLL = BusyPoll()
poke = BUSY_POLL.poke
