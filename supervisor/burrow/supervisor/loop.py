"""The supervisor's single-threaded poll loop: zmq.Poller over sockets and fds, plus timers.

No threads and no sleeps: every wait is the poll timeout up to the next timer deadline.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable
from typing import Any

import zmq

Callback = Callable[[], None]


class Timer:
    """A scheduled callback; :meth:`cancel` stops it from running."""

    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callback) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        """Do not run this timer."""
        self.cancelled = True


class Loop:
    """Dispatches readable zmq sockets / fds and due timers until :meth:`stop`."""

    def __init__(self) -> None:
        self._poller = zmq.Poller()
        self._readers: dict[Any, Callback] = {}
        self._timers: list[tuple[float, int, Timer]] = []
        self._seq = itertools.count()
        self._running = False

    @staticmethod
    def time() -> float:
        """The loop's clock (monotonic seconds)."""
        return time.monotonic()

    def add_reader(self, source: zmq.Socket[Any] | int, callback: Callback) -> None:
        """Call ``callback`` whenever ``source`` (a zmq socket or an fd) is readable."""
        self._poller.register(source, zmq.POLLIN)
        self._readers[source] = callback

    def remove_reader(self, source: zmq.Socket[Any] | int) -> None:
        """Stop watching ``source``."""
        if self._readers.pop(source, None) is not None:
            self._poller.unregister(source)

    def call_at(self, when: float, callback: Callback) -> Timer:
        """Run ``callback`` once at monotonic time ``when``."""
        timer = Timer(when, callback)
        heapq.heappush(self._timers, (when, next(self._seq), timer))
        return timer

    def call_later(self, delay: float, callback: Callback) -> Timer:
        """Run ``callback`` once after ``delay`` seconds."""
        return self.call_at(self.time() + delay, callback)

    def stop(self) -> None:
        """Leave :meth:`run` after the current iteration."""
        self._running = False

    def _timeout_ms(self) -> int | None:
        while self._timers and self._timers[0][2].cancelled:
            heapq.heappop(self._timers)
        if not self._timers:
            return None
        return max(0, int((self._timers[0][0] - self.time()) * 1000) + 1)

    def _run_due(self) -> None:
        now = self.time()
        while self._timers and self._timers[0][0] <= now:
            _, _, timer = heapq.heappop(self._timers)
            if not timer.cancelled:
                timer.cancelled = True
                timer.callback()
            if not self._running:
                return

    def run(self) -> None:
        """Poll and dispatch until :meth:`stop` is called."""
        self._running = True
        while self._running:
            events = self._poller.poll(self._timeout_ms())
            for source, _ in events:
                callback = self._readers.get(source)
                if callback is not None:
                    callback()
                if not self._running:
                    return
            self._run_due()
