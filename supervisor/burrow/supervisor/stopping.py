"""Supervisor's stops: signal dispatch, graceful and fast stops, retiring a worker process.

``Stopper`` is a mixin of ``Supervisor`` (arbiter.py), which owns the state declared here.
"""

from __future__ import annotations

import logging
import signal
from typing import TYPE_CHECKING

from burrow.common.exitcodes import ExitCode
from burrow.common.logfmt import event

from . import systemd

if TYPE_CHECKING:
    from .arbiter import Slot
    from .cluster_bridge import ClusterBridge
    from .health import HeartbeatMonitor
    from .loop import Loop
    from .spawn import WorkerProcess

log = logging.getLogger("burrow.supervisor")


class Stopper:
    """Signals to stops, and a worker's SIGTERM-then-SIGKILL; mixed into ``Supervisor``."""

    # Set up by Supervisor.__init__ (arbiter.py).
    grace: float
    health: HeartbeatMonitor
    loop: Loop
    procs: dict[int, WorkerProcess]
    slots: list[Slot]
    _bridge: ClusterBridge | None
    _exit_code: ExitCode
    _stopping: bool

    def _dispatch(self, signals: list[signal.Signals]) -> None:
        for sig in signals:
            handler = getattr(self, f"handle_{sig.name.lower()}", None)
            if handler is not None:
                handler()

    def handle_sigterm(self) -> None:
        """Graceful stop: workers drain for the grace period, stragglers get SIGKILL."""
        self._graceful(signal.SIGTERM)

    def handle_sigint(self) -> None:
        """Ctrl-C: same as SIGTERM."""
        self._graceful(signal.SIGINT)

    def _graceful(self, sig: signal.Signals) -> None:
        if self._stopping:
            # A second SIGTERM/SIGINT: the workers stop without waiting (SIGQUIT: a repeated
            # SIGTERM means nothing to a worker, since systemd's reaches the whole group).
            event(log, logging.INFO, "supervisor.stopping", signal=sig.name, grace=0)
            for proc in list(self.procs.values()):
                proc.send_signal(signal.SIGQUIT)
            return
        event(log, logging.INFO, "supervisor.stopping", signal=sig.name, grace=self.grace)
        self.stop(ExitCode.OK)

    def handle_sigquit(self) -> None:
        """Fast stop: workers get SIGQUIT and no drain period."""
        event(log, logging.INFO, "supervisor.stopping", signal="SIGQUIT")
        self.stop(ExitCode.OK, sig=signal.SIGQUIT, grace=min(self.grace, 1.0))

    def _retire(self, proc: WorkerProcess, sig: int, grace: float) -> None:
        """Ask ``proc`` to stop; SIGKILL it if it is still there after ``grace`` seconds."""
        proc.stopping = True
        self.health.forget(proc.pid)
        proc.send_signal(sig)

        def kill() -> None:
            if proc.returncode is None:
                proc.killed = f"still running {grace:g}s after {signal.Signals(sig).name}"
                proc.send_signal(signal.SIGKILL)

        self.loop.call_later(grace, kill)

    def stop(
        self,
        code: int,
        *,
        reason: str | None = None,
        sig: int = signal.SIGTERM,
        grace: float | None = None,
    ) -> None:
        """Stop every worker (``sig``, then SIGKILL after the grace period) and exit with ``code``."""
        if self._stopping:
            return
        self._stopping = True
        self._exit_code = ExitCode(code)
        if self._bridge is not None and self._bridge.client is not None:
            # Leave the cluster first: other nodes stop sending forwards to a draining node.
            self._bridge.client.leave()
        if reason:
            event(log, logging.ERROR, "supervisor.halt", reason=reason, exit_code=int(code))
        systemd.sd_notify("STOPPING=1")
        for slot in self.slots:
            if slot.restart is not None:
                slot.restart.cancel()
                slot.restart = None
        if not self.procs:
            self.loop.stop()
            return
        for proc in list(self.procs.values()):
            self._retire(proc, sig, self.grace if grace is None else grace)
