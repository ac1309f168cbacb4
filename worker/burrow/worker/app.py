"""App: everything one worker process runs.

Boot: decode the PlanSet the supervisor planned (the worker never reads config files), join the
bus, start the handoff inbox, then start every service (server, tunnel clients, visitors; see
services.py for the lifecycle). Ready is sent once all of them run. SIGTERM/SIGINT drain: every
service stops accepting and in-flight connections get up to ``[burrow] grace`` seconds; a
second SIGTERM/SIGINT stops at once. The lifeline closing (supervisor gone) exits at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from typing import Any

from burrow.common.logfmt import event
from burrow.config.plan_types import TunnelClientPlan
from burrow.config.planset import PlanSet, decode_planset
from burrow.ipc.messages import Reconfigure
from burrow.ipc.spec import WorkerSpec
from burrow.net.busypoll import BUSY_POLL
from burrow.net.conncap import ConnectionCap
from burrow.net.fdwatch import watch_fds
from burrow.net.idlewatch import IdleWatch
from burrow.server.access_log import ACCESS
from burrow.server.handoff import HandoffInbox, HandoffOutbox
from burrow.server.pool import TunnelPool
from burrow.server.router import Router
from burrow.worker.bus import BusClient
from burrow.worker.lifeline import watch_lifeline
from burrow.worker.services import ServerService, Service, UdpVisitorService
from burrow.worker.stats import STATS

log = logging.getLogger("burrow.worker")


class BootError(Exception):
    """The worker cannot start: bad spec, plans or sockets. The supervisor must not retry."""


class App:
    """One worker: services, bus, handoff, signals."""

    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        try:
            self.planset: PlanSet = decode_planset(spec.plans)
            self.limits = self.planset.settings.limits
            self.cap = ConnectionCap(self.limits)  # one per worker, every public listener
            if self.cap.clamped_from is not None:
                event(
                    log,
                    logging.INFO,
                    "worker.max_connections_lowered",
                    configured=self.cap.clamped_from,
                    max_connections=self.cap.total,
                    reason="RLIMIT_NOFILE is lower; raise LimitNOFILE",
                )
        except Exception as exc:
            raise BootError(f"plans: {exc}") from exc
        self.sockets: dict[tuple[str, str, str], list[socket.socket]] = {}
        for lf in spec.listeners:
            kind = socket.SOCK_STREAM if lf.network == "tcp" else socket.SOCK_DGRAM
            try:
                sock = socket.socket(fileno=lf.fd)
            except OSError as exc:
                raise BootError(f"listener fd {lf.fd} ({lf.address}): {exc}") from exc
            if sock.type != kind:
                raise BootError(f"listener fd {lf.fd} is not a {lf.network} socket")
            self.sockets.setdefault((lf.service, lf.role, lf.network), []).append(sock)
        self.services: dict[str, Service] = {}
        self._stop = asyncio.Event()
        self._now = asyncio.Event()
        self._bus: BusClient | None = None

    def _take(self, service: str, role: str, network: str) -> list[socket.socket]:
        return self.sockets.pop((service, role, network), [])

    def _signal(self) -> None:
        # First SIGTERM/SIGINT drains, a second one stops at once.
        (self._now if self._stop.is_set() else self._stop).set()

    async def run(self) -> None:
        """Serve until told to stop."""
        loop = asyncio.get_running_loop()
        spec = self.spec
        BUSY_POLL.configure(loop, self.planset.settings.busy_poll_us)
        watch_lifeline(loop, spec.lifeline_fd, self._lifeline_lost)
        loop.add_signal_handler(signal.SIGTERM, self._signal)
        loop.add_signal_handler(signal.SIGINT, self._signal)
        loop.add_signal_handler(signal.SIGQUIT, self._quit)
        bus = self._bus = BusClient(spec)
        bus.on_reconfigure = self.reconfigure
        ACCESS.configure(self.planset.settings.access_log)
        if self.planset.settings.stats:
            pid = os.getpid()
            bus.stats = lambda: STATS.snapshot(spec.index, pid)
        try:
            await bus.start()
        except Exception as exc:
            raise BootError(f"cannot join the supervisor's bus: {exc!r}") from exc
        outbox = HandoffOutbox(spec) if spec.outbox_fds else None
        pool = TunnelPool(spec.index, bus)
        router = Router(pool, outbox, IdleWatch(self.limits.idle_timeout))
        inbox = HandoffInbox(spec, router.adopt)
        inbox.start()
        fd_watch = loop.create_task(watch_fds(), name="fd-watch")
        try:
            for service in self._build(pool, router):
                self.services[service.name] = service
                await service.start()
            bus.ready()
            event(log, logging.DEBUG, "worker.ready", index=spec.index, pid=os.getpid())
            await self._stop.wait()
            grace = self.planset.settings.grace
            event(log, logging.INFO, "worker.draining", index=spec.index, grace=grace)
            await self._drain(grace)
        finally:
            fd_watch.cancel()
            for service in self.services.values():
                service.close()
            inbox.close()
            if outbox is not None:
                outbox.close()
            # Tunnels still closing after this are dropped from the registry by the supervisor
            # when this worker exits; the bus is gone by then.
            pool.bus = None
            await bus.close()

    def _build(self, pool: TunnelPool, router: Router) -> list[Service]:
        # Imported here: the client side is only loaded by workers that run it.
        out: list[Service] = []
        for plan in self.planset.servers:
            relays = self._take(plan.name, "relay", "tcp")
            entries = self._take(plan.name, "entrypoint", "tcp")
            out.append(ServerService(plan, pool, router, relays, entries, self.limits, self.cap))
        for cplan in self.planset.clients:
            out.append(self._client(cplan))
        for vplan in self.planset.visitors:
            for sock in self._take(vplan.name, "visitor", vplan.network):
                if vplan.network == "tcp":
                    from burrow.client.visitor import TcpVisitor

                    out.append(TcpVisitor(vplan, sock, self.cap))
                else:
                    out.append(UdpVisitorService(vplan, sock))
        return out

    def _client(self, plan: TunnelClientPlan) -> Service:
        from burrow.client.tunnel import TunnelClient

        return TunnelClient(plan, worker=self.spec.index, limits=self.limits)

    async def _drain(self, grace: float) -> None:
        """Every service drains at once; give up after ``grace`` or on a second signal."""
        drains = [asyncio.ensure_future(s.drain()) for s in self.services.values()]
        everything: asyncio.Future[Any] = asyncio.gather(*drains)
        now: asyncio.Future[Any] = asyncio.ensure_future(self._now.wait())
        try:
            await asyncio.wait(
                [everything, now], timeout=grace, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            now.cancel()
            everything.cancel()

    def reconfigure(self, msg: Reconfigure) -> None:
        """SIGHUP or an ingress file reload: apply the new plans in place, then acknowledge."""
        try:
            new = decode_planset(msg.plans)
        except Exception as exc:  # noqa: BLE001 - a bad message keeps the running plans
            event(log, logging.ERROR, "worker.reconfigure_failed", error=str(exc))
            return
        BUSY_POLL.configure(asyncio.get_running_loop(), new.settings.busy_poll_us)
        ACCESS.configure(new.settings.access_log)
        changed = self.planset.changed(new)
        old_clients = {p.name for p in self.planset.clients}
        plans: dict[str, Any] = {p.name: p for p in new.plans()}
        for name in changed:
            service = self.services.get(name)
            plan = plans.get(name)
            if service is not None and plan is not None:
                service.apply(plan)
            elif service is None and isinstance(plan, TunnelClientPlan):
                client = self.services[name] = self._client(plan)
                asyncio.ensure_future(client.start())
            elif service is not None and plan is None and name in old_clients:
                # A removed tunnel client (no listener); listener services cannot go away,
                # the supervisor refuses a reload that changes the set of listeners.
                del self.services[name]
                service.close()
        self.planset = new
        event(log, logging.DEBUG, "worker.reconfigured", generation=msg.generation,
              changed=",".join(sorted(changed)))  # fmt: skip
        if self._bus is not None:
            self._bus.applied(msg.generation)

    def _lifeline_lost(self) -> None:
        os._exit(0)

    def _quit(self) -> None:
        os._exit(0)
