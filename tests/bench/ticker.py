"""A precise periodic wake-up for the open-loop generator: a Linux timerfd on the event loop.

uvloop (libuv) and asyncio timers have millisecond resolution and on this kind of VM wake
0.2-4 ms late, which would put up to a millisecond of generator lag into every open-loop latency
(a direct loopback HTTP request takes ~100 us). A timerfd expires on a high-resolution kernel
timer and wakes epoll within microseconds, with no busy waiting. Falls back to ``asyncio.sleep``
where timerfd is unavailable.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
import time

CLOCK_MONOTONIC = 1  # the clock of time.perf_counter / time.monotonic on Linux
TFD_TIMER_ABSTIME = 1
TFD_NONBLOCK = 0o4000
TFD_CLOEXEC = 0o2000000


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


def _ts(seconds: float) -> _Timespec:
    whole = int(seconds)
    return _Timespec(whole, int((seconds - whole) * 1e9))


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        libc.timerfd_create  # noqa: B018 - probe that the symbol exists
        return libc
    except (OSError, AttributeError):
        return None


_LIBC = _libc()


class Ticker:
    """Wakes the loop every ``interval`` s from ``start`` (a time.perf_counter value) on."""

    def __init__(self, start: float, interval: float) -> None:
        self.start = start
        self.interval = interval
        self.fd = -1
        self.event = asyncio.Event()
        if (
            _LIBC is None
            or time.get_clock_info("perf_counter").implementation.find("CLOCK_MONOTONIC") < 0
        ):
            return
        fd = _LIBC.timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)
        if fd < 0:
            return
        spec = _Itimerspec(_ts(interval), _ts(start))
        if _LIBC.timerfd_settime(fd, TFD_TIMER_ABSTIME, ctypes.byref(spec), None) != 0:
            os.close(fd)
            return
        self.fd = fd
        asyncio.get_running_loop().add_reader(fd, self._expired)

    def _expired(self) -> None:
        try:
            os.read(self.fd, 8)
        except BlockingIOError:
            return
        self.event.set()

    async def wait_until(self, due: float) -> None:
        """Return at (or just after) perf_counter time ``due``, which lies on the tick grid."""
        if self.fd < 0:
            await asyncio.sleep(max(due - time.perf_counter(), 0.0))
            return
        while time.perf_counter() < due:
            self.event.clear()
            await self.event.wait()

    def close(self) -> None:
        """Stop the timer and release the fd."""
        if self.fd >= 0:
            asyncio.get_running_loop().remove_reader(self.fd)
            os.close(self.fd)
            self.fd = -1
