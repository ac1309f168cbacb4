"""Supervisor's heartbeat watchdog: one timer for the next deadline, SIGKILL for the silent.

``Watchdog`` is a mixin of ``Supervisor`` (arbiter.py), which owns the state declared here;
the bookkeeping itself is ``HeartbeatMonitor`` (health.py).
"""

from __future__ import annotations

import logging
import signal
from typing import TYPE_CHECKING

from burrow.common.logfmt import event

if TYPE_CHECKING:
    from .health import HeartbeatMonitor
    from .loop import Loop, Timer
    from .spawn import WorkerProcess

log = logging.getLogger("burrow.supervisor")


class Watchdog:
    """Arms and runs the heartbeat check; mixed into ``Supervisor``."""

    # Set up by Supervisor.__init__ (arbiter.py).
    health: HeartbeatMonitor
    loop: Loop
    procs: dict[int, WorkerProcess]
    _health_timer: Timer | None

    def _arm_health(self) -> None:
        deadline = self.health.next_check(self.loop.time())
        if deadline is None:
            return
        if self._health_timer is not None and not self._health_timer.cancelled:
            if self._health_timer.when <= deadline:
                return
            self._health_timer.cancel()
        self._health_timer = self.loop.call_at(deadline, self._check_health)

    def _check_health(self) -> None:
        self._health_timer = None
        now = self.loop.time()
        stall = self.health.observe(now)
        if stall:
            event(log, logging.WARNING, "supervisor.stalled", seconds=round(stall, 2))
        for pid in self.health.expired(now):
            proc = self.procs.get(pid)
            if proc is None or proc.stopping:
                continue
            proc.killed = f"no heartbeat for {self.health.timeout:g}s"
            event(log, logging.WARNING, "worker.unresponsive", worker=proc.index, pid=pid)
            proc.send_signal(signal.SIGKILL)
        self._arm_health()
