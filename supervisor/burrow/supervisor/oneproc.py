"""One process or a pool: a config of only tunnel clients and visitors runs in ``burrow`` itself.

gost runs a tunnel client or a visitor as one process; so does Burrow unless a worker count is
asked for (``--workers N`` or ``[burrow] workers``), which keeps the supervisor + worker pool.
Here the listeners are bound (the same ``bind_listeners``, one socket each, so the
exclusive-owner checks and systemd adoption apply) and the services handed to the worker's
runner, named by module as ``spawn`` names the worker module: this package imports no worker
code, and neither ZeroMQ nor the registry or handoff mesh is loaded in this mode.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import TextIO

from burrow.common.exitcodes import ExitCode
from burrow.common.logfmt import event
from burrow.config.plan_types import ServicePlan, TunnelClientPlan, VisitorPlan

from . import systemd
from .listeners import BindRequest, BoundListener, ListenerError, bind_listeners
from .reload import Reloaded, ReloadRefused

log = logging.getLogger("burrow.supervisor")

STANDALONE_MODULE = "burrow.worker.standalone"
MODE = "one-process"


def one_process(
    plans: Sequence[ServicePlan], flag: int | None, configured: int | None = None
) -> bool:
    """True when every plan is a tunnel client or visitor and no worker count was asked for.

    ``flag`` is ``--workers``, ``configured`` is ``[burrow] workers``; either one (even 1)
    asks for the pool. A relay server (with its entry points) always gets the pool.
    """
    if flag is not None or configured is not None or not plans:
        return False
    return all(isinstance(p, TunnelClientPlan | VisitorPlan) for p in plans)


class OneProcessHost:
    """The standalone runner's host: READY line, sd_notify, SIGHUP re-planning, stop logs."""

    def __init__(
        self,
        binds: Sequence[BindRequest],
        listeners: Sequence[BoundListener],
        reload: Callable[[], Reloaded | ReloadRefused],
        stdout: TextIO | None = None,
    ) -> None:
        self.binds = list(binds)
        self.tokens = " ".join(lst.token for lst in listeners)
        self.generation = 0
        self._reload = reload
        self._stdout = stdout if stdout is not None else sys.stdout
        self._stopping = False

    def ready(self) -> None:
        """The pool's READY line (workers=1) once every service runs; READY=1 to systemd."""
        print(f"READY workers=1 {self.tokens}".rstrip(), file=self._stdout, flush=True)
        systemd.sd_notify("READY=1")
        event(log, logging.INFO, "supervisor.ready", workers=1, mode=MODE, pid=os.getpid())

    def reload(self) -> bytes | None:
        """Re-read and plan the config; the new PlanSet bytes, or None with the reason logged."""
        systemd.sd_notify("RELOADING=1")
        result = self._reload()
        if isinstance(result, ReloadRefused):
            level = logging.ERROR if result.name == "reload.failed" else logging.INFO
            event(log, level, result.name, **result.fields)
            systemd.sd_notify("READY=1")
            return None
        if result.binds != self.binds:
            event(log, logging.ERROR, "reload.rejected", reason="the set of listeners changed",
                  fix="restart burrow to bind new listeners")  # fmt: skip
            systemd.sd_notify("READY=1")
            return None
        self.generation += 1
        event(log, logging.INFO, "reload.start", generation=self.generation, mode="live")
        return result.config

    def reloaded(self) -> None:
        """The new plans serve: reload.done, READY=1."""
        event(log, logging.INFO, "reload.done", generation=self.generation, workers=1)
        systemd.sd_notify("READY=1")

    def stopping(self, sig: str, grace: float) -> None:
        """supervisor.stopping, and STOPPING=1 the first time."""
        event(log, logging.INFO, "supervisor.stopping", signal=sig, grace=grace)
        if not self._stopping:
            self._stopping = True
            systemd.sd_notify("STOPPING=1")


def run_one_process(
    binds: Sequence[BindRequest],
    plans: bytes,
    reload: Callable[[], Reloaded | ReloadRefused],
    inherited_fds: Sequence[int] = (),
) -> int:
    """Bind ``binds`` once each and serve ``plans`` in this process; returns the exit code."""
    try:
        listeners, unused = bind_listeners(binds, 1, inherited_fds)
    except ListenerError as exc:
        event(log, logging.ERROR, "supervisor.bind_failed", error=str(exc))
        return ExitCode.FAILURE
    for fd in unused:
        event(log, logging.WARNING, "systemd.unused_socket", fd=fd, action="closed")
        os.close(fd)
    try:
        sockets = {
            (lst.request.service, lst.request.role, lst.request.network): list(lst.sockets)
            for lst in listeners
        }
        host = OneProcessHost(binds, listeners, reload)
        event(log, logging.INFO, "supervisor.start", workers=1, listeners=len(listeners),
              mode=MODE)  # fmt: skip
        runner = importlib.import_module(STANDALONE_MODULE)
        return int(runner.run_standalone(plans, sockets, host))
    finally:
        for lst in listeners:
            lst.close()
