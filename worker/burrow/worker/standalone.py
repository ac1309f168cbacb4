"""One-process mode: a config's tunnel clients and visitors served in the calling process.

``burrow`` runs a config whose services are all tunnel clients and visitors this way unless a
worker count is given, as gost runs one process (docs/architecture.md, One-process mode): no
supervisor, no workers, no ZeroMQ bus, no registry, no handoff mesh. The caller
(``burrow.supervisor.solo``, which ``burrow`` execs into) has planned the config and bound the
listeners; its ``Host`` prints READY, talks to systemd and re-plans on SIGHUP, so this module
never reads a config file.

The services are the worker's (services.py lifecycle: start, apply, drain, close) on uvloop.
SIGTERM/SIGINT drain for ``[burrow] grace``, a second one stops at once, SIGQUIT stops at once,
SIGHUP applies the re-planned config in place. Nobody restarts a crashed one-process burrow but
its own supervisor (systemd ``Restart=on-failure``, a container runtime, the operator).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from typing import Protocol

import uvloop

from burrow.common.exitcodes import ExitCode
from burrow.common.logfmt import event
from burrow.config.plan_types import TunnelClientPlan
from burrow.config.planset import PlanSet, decode_planset
from burrow.net.busypoll import BUSY_POLL
from burrow.net.conncap import ConnectionCap
from burrow.net.fdwatch import watch_fds
from burrow.worker.services import Service, UdpVisitorService, apply_changed, drain_all

log = logging.getLogger("burrow.worker")

# (service, role, network) -> the bound listening sockets of that listener.
Sockets = dict[tuple[str, str, str], list[socket.socket]]


class Host(Protocol):
    """What the process around the services does: announce, re-plan, report."""

    def ready(self) -> None:
        """Every service runs: print READY, tell systemd."""

    def reload(self) -> bytes | None:
        """SIGHUP: the re-planned PlanSet bytes, or None (the refusal is logged already)."""

    def reloaded(self, error: str | None = None) -> None:
        """The plans ``reload`` gave are applied, or why they could not be (old ones serve)."""

    def stopping(self, sig: str, grace: float) -> None:
        """A stop signal arrived; ``grace`` 0 means at once."""


class Standalone:
    """The services of one PlanSet without listeners of a relay server (clients, visitors)."""

    def __init__(self, plans: bytes, sockets: Sockets, host: Host) -> None:
        self.planset: PlanSet = decode_planset(plans)
        if self.planset.servers:
            raise ValueError("one-process mode runs tunnel clients and visitors only")
        self.limits = self.planset.settings.limits
        self.cap = ConnectionCap(self.limits)
        self.sockets = sockets
        self.host = host
        self.services: dict[str, Service] = {}
        self._stop = asyncio.Event()
        self._now = asyncio.Event()

    async def run(self) -> None:
        """Start every service, serve until a stop signal, drain, close."""
        loop = asyncio.get_running_loop()
        if self.cap.clamped_from is not None:
            event(log, logging.INFO, "worker.max_connections_lowered",
                  configured=self.cap.clamped_from, max_connections=self.cap.total,
                  reason="RLIMIT_NOFILE is lower; raise LimitNOFILE")  # fmt: skip
        BUSY_POLL.configure(loop, self.planset.settings.busy_poll_us)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP):
            loop.add_signal_handler(sig, self._signal, sig)
        fd_watch = loop.create_task(watch_fds(), name="fd-watch")
        try:
            for service in self._build():
                self.services[service.name] = service
                await service.start()
            self.host.ready()
            await self._stop.wait()
            if not self._now.is_set():
                grace = self.planset.settings.grace
                event(log, logging.INFO, "worker.draining", index=0, grace=grace)
                await drain_all(self.services.values(), grace, self._now)
        finally:
            fd_watch.cancel()
            for service in self.services.values():
                service.close()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP):
                loop.remove_signal_handler(sig)

    def _signal(self, sig: signal.Signals) -> None:
        if sig == signal.SIGHUP:
            if not self._stop.is_set():
                self.reload()
            return
        if sig == signal.SIGQUIT or self._stop.is_set():
            # SIGQUIT, or a second SIGTERM/SIGINT: stop without waiting for open connections.
            self.host.stopping(sig.name, 0.0)
            self._now.set()
        else:
            self.host.stopping(sig.name, self.planset.settings.grace)
        self._stop.set()

    def _build(self) -> list[Service]:
        out: list[Service] = [self._client(plan) for plan in self.planset.clients]
        for vplan in self.planset.visitors:
            for sock in self.sockets.pop((vplan.name, "visitor", vplan.network), []):
                if vplan.network == "tcp":
                    from burrow.client.visitor import TcpVisitor

                    out.append(TcpVisitor(vplan, sock, self.cap))
                else:
                    out.append(UdpVisitorService(vplan, sock))
        return out

    def _client(self, plan: TunnelClientPlan) -> Service:
        from burrow.client.tunnel import TunnelClient

        return TunnelClient(plan, worker=0, limits=self.limits)

    def reload(self) -> None:
        """SIGHUP: ask the host for new plans and apply them in place (as a worker's Reconfigure)."""
        data = self.host.reload()
        if data is None:
            return
        try:
            new = decode_planset(data)
        except Exception as exc:  # noqa: BLE001 - a bad plan set keeps the running plans
            self.host.reloaded(f"plans: {exc}")
            return
        if new.servers:
            # The host refuses a changed set of listeners first: a relay server always has one.
            self.host.reloaded("a relay server was added; restart burrow to run it (in a pool)")
            return
        BUSY_POLL.configure(asyncio.get_running_loop(), new.settings.busy_poll_us)
        apply_changed(self.services, self.planset, new, self._client)
        self.planset = new
        self.host.reloaded()


def run_standalone(plans: bytes, sockets: Sockets, host: Host) -> int:
    """Serve ``plans`` on uvloop in this process until stopped; returns the exit code."""
    try:
        app = Standalone(plans, sockets, host)
    except Exception as exc:  # noqa: BLE001 - bad plans: say so and exit, nothing started
        event(log, logging.ERROR, "worker.boot_failed", index=0, error=str(exc))
        return ExitCode.FAILURE
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(app.run())
    except Exception:
        # No supervisor restarts this process: say why it ends; systemd (Restart=on-failure)
        # or the operator starts it again.
        log.exception("worker.failed")  # with the traceback
        return ExitCode.SOFTWARE
    return ExitCode.OK
