"""One keepalive timer per event loop for every smux session (a timing wheel of coarse slots).

With one loop timer per session, 10,000 idle tunnels meant 1,000 timer callbacks a second, each
allocating a handle and reordering the loop's timer heap. Here a session due at ``deadline`` goes
into the slot ``ceil(deadline / SLOT)``; one timer per loop fires every SLOT seconds while any
session waits and runs the slots that came due. A duty (NOP, silence check) runs at most SLOT
late, against a 10 s keepalive interval and a 30 s timeout by default.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable

log = logging.getLogger("burrow.mux")

SLOT = 0.05  # seconds per slot: also the tick of the one timer while sessions are waiting


class KeepaliveWheel:
    """Calls each scheduled callback once, at the first tick at or after its deadline."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._slots: dict[int, list[Callable[[], None]]] = {}
        self._done = math.floor(time.monotonic() / SLOT)  # every slot up to this one has run
        self._timer: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        """Callbacks waiting."""
        return sum(map(len, self._slots.values()))

    @property
    def ticking(self) -> bool:
        """Whether the wheel's one timer is armed."""
        return self._timer is not None

    def schedule(self, deadline: float, callback: Callable[[], None]) -> None:
        """Run ``callback`` once, at or after ``deadline`` (time.monotonic() clock)."""
        slot = max(math.ceil(deadline / SLOT), self._done + 1)
        bucket = self._slots.get(slot)
        if bucket is None:
            self._slots[slot] = [callback]
        else:
            bucket.append(callback)
        if self._timer is None:
            self._timer = self.loop.call_later(SLOT, self._tick)

    def _tick(self) -> None:
        self._timer = None
        now = math.floor(time.monotonic() / SLOT)
        start, self._done = self._done + 1, max(self._done, now)
        slots = self._slots
        # Whatever the callbacks schedule (their next duty) goes after ``now``: never this round.
        for slot in range(start, now + 1):
            due = slots.pop(slot, None)
            if due is None:
                continue
            for callback in due:
                try:
                    callback()
                except Exception:
                    log.exception("keepalive.callback_failed")  # one session, not the wheel
        if slots:
            self._timer = self.loop.call_later(SLOT, self._tick)

    def close(self) -> None:
        """Drop everything (the loop is going away)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._slots.clear()


_WHEELS: dict[int, KeepaliveWheel] = {}


def wheel_for(loop: asyncio.AbstractEventLoop) -> KeepaliveWheel:
    """The wheel of ``loop`` (created on first use; wheels of closed loops are dropped)."""
    w = _WHEELS.get(id(loop))
    if w is not None and w.loop is loop:
        return w
    for key, old in list(_WHEELS.items()):
        if old.loop.is_closed():
            del _WHEELS[key]
    w = _WHEELS[id(loop)] = KeepaliveWheel(loop)
    return w
