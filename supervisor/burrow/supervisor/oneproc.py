"""One process or a pool: a config of only tunnel clients and visitors runs in ``burrow`` itself.

gost runs a tunnel client or a visitor as one process; so does Burrow unless a worker count is
asked for (``--workers N`` or ``[burrow] workers``), which keeps the supervisor + worker pool.
``run_one_process`` binds the listeners (the same ``bind_or_report``, one socket each, so the
exclusive-owner checks and systemd adoption apply), then execs ``solo.py`` in place: same pid,
the listening fds and a SoloSpec (plans, listeners, config source) passed across, and none of
the config loaders, argparse or planning garbage kept. ``serve`` (in that image) hands the
services to the worker's runner, named by module as ``spawn`` names the worker module: this
package imports no worker code, and ZeroMQ, the registry and the handoff mesh are never loaded.
"""

from __future__ import annotations

import importlib
import logging
import os
import socket
import sys
from collections.abc import Callable, Sequence
from typing import TextIO

import msgspec

from burrow.common.exitcodes import ExitCode
from burrow.common.logfmt import event
from burrow.config.plan_types import ServicePlan, TunnelClientPlan, VisitorPlan
from burrow.ipc.spec import ListenerFd

from . import systemd
from .listeners import BindRequest, bind_or_report
from .reload import Reloaded, ReloadRefused

log = logging.getLogger("burrow.supervisor")

STANDALONE_MODULE = "burrow.worker.standalone"
SOLO_MODULE = "burrow.supervisor.solo"
MODE = "one-process"


class SoloSpec(msgspec.Struct, frozen=True):
    """What the exec'd one-process image needs: plans, listeners, where to reload from."""

    plans: bytes
    source: str | None
    binds: list[BindRequest]
    listeners: list[ListenerFd]
    tokens: str
    log_level: str = "info"
    log_format: str = "text"


def encode_solo_spec(spec: SoloSpec) -> bytes:
    """msgpack bytes for the spec fd."""
    return msgspec.msgpack.encode(spec)


def decode_solo_spec(data: bytes) -> SoloSpec:
    """Decode what ``encode_solo_spec`` wrote; raises msgspec errors on a mismatch."""
    return msgspec.msgpack.decode(data, type=SoloSpec)


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
        tokens: str,
        reload: Callable[[], Reloaded | ReloadRefused],
        stdout: TextIO | None = None,
    ) -> None:
        self.binds = list(binds)
        self.tokens = tokens
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
        systemd.notify_reloading()
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

    def reloaded(self, error: str | None = None) -> None:
        """The new plans serve (reload.done), or could not be applied (reload.failed); READY=1."""
        if error is None:
            event(log, logging.INFO, "reload.done", generation=self.generation, workers=1)
        else:
            event(log, logging.ERROR, "reload.failed", generation=self.generation, error=error,
                  action="keeping the running config")  # fmt: skip
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
    source: str | None,
    *,
    log_level: str = "info",
    log_format: str = "text",
    inherited_fds: Sequence[int] = (),
) -> int:
    """Bind ``binds`` once each and exec the one-process image; returns only on failure."""
    listeners = bind_or_report(binds, 1, inherited_fds, log)
    if listeners is None:
        return ExitCode.FAILURE
    spec = SoloSpec(
        plans=plans,
        source=source,
        binds=list(binds),
        listeners=[
            ListenerFd(lst.request.service, lst.request.role, lst.request.network, lst.address, fd)
            for lst in listeners
            for fd in (sock.fileno() for sock in lst.sockets)
        ],
        tokens=" ".join(lst.token for lst in listeners),
        log_level=log_level,
        log_format=log_format,
    )
    try:
        _exec(encode_solo_spec(spec), [lf.fd for lf in spec.listeners])
    except OSError as exc:
        event(log, logging.ERROR, "supervisor.exec_failed", error=str(exc), module=SOLO_MODULE,
              fix="check that the burrow package is importable by this Python")  # fmt: skip
    finally:
        for lst in listeners:
            lst.close()
    return ExitCode.FAILURE


def _exec(spec: bytes, fds: list[int]) -> None:
    """Replace this image with ``python -m burrow.supervisor.solo``, keeping pid and ``fds``."""
    # A memfd rather than a pipe: nobody reads before the exec, and a big spec must not block.
    spec_fd = os.memfd_create("burrow-solo-spec")
    try:
        view = memoryview(spec)
        while view:
            view = view[os.write(spec_fd, view) :]
        os.lseek(spec_fd, 0, os.SEEK_SET)
        for fd in [*fds, spec_fd]:
            os.set_inheritable(fd, True)
        sys.stdout.flush()
        sys.stderr.flush()
        # The original arguments ride along after "--" only so that ps and pgrep still show them.
        argv = [sys.executable, "-m", SOLO_MODULE, "--spec-fd", str(spec_fd), "--", *sys.argv[1:]]
        os.execv(sys.executable, argv)
    finally:
        # Only reached when the exec failed.
        for fd in fds:
            os.set_inheritable(fd, False)
        os.close(spec_fd)


def serve(spec: SoloSpec, sockets: dict[tuple[str, str, str], list[socket.socket]]) -> int:
    """In the exec'd image: run the spec's services until stopped; returns the exit code."""
    from .run import _Reloader  # the SIGHUP re-planning the pool's supervisor does

    host = OneProcessHost(spec.binds, spec.tokens, _Reloader(spec.source, None))
    event(log, logging.INFO, "supervisor.start", workers=1, listeners=len(spec.binds),
          mode=MODE)  # fmt: skip
    runner = importlib.import_module(STANDALONE_MODULE)
    return int(runner.run_standalone(spec.plans, sockets, host))
