"""App: everything one worker process runs.

Boot: decode the PlanSet the supervisor planned (the worker never reads config files), join the
bus, start the handoff inbox, then start every service (server, tunnel clients, visitors; see
services.py for the lifecycle). Ready is sent once all of them run. SIGTERM drains: every
service stops accepting and in-flight connections get up to ``[burrow] grace`` seconds; SIGQUIT
stops at once. Only the supervisor decides between the two: a terminal's Ctrl-C (SIGINT) and
systemd's SIGTERM reach every process of the group, so SIGINT is ignored and a repeated SIGTERM
changes nothing (the supervisor sends SIGQUIT for "now"). The lifeline closing (supervisor gone)
exits at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket

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
from burrow.server.failover import failover_config
from burrow.server.handoff import HandoffInbox, HandoffOutbox
from burrow.server.pool import TunnelPool
from burrow.server.router import Router
from burrow.worker.bus import BusClient
from burrow.worker.lifeline import watch_lifeline
from burrow.worker.services import (
    ServerService,
    Service,
    UdpVisitorService,
    apply_changed,
    drain_all,
)
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
        self._bus: BusClient | None = None

    def _take(self, service: str, role: str, network: str) -> list[socket.socket]:
        return self.sockets.pop((service, role, network), [])

    def _signal(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Serve until told to stop."""
        loop = asyncio.get_running_loop()
        spec = self.spec
        BUSY_POLL.configure(loop, self.planset.settings.busy_poll_us)
        watch_lifeline(loop, spec.lifeline_fd, self._lifeline_lost)
        loop.add_signal_handler(signal.SIGTERM, self._signal)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
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
        router = Router(
            pool, outbox, IdleWatch(self.limits.idle_timeout), failover_config(self.limits)
        )
        if self.planset.cluster is not None and self.planset.servers:
            from burrow.server.forward import Forwarder

            router.forwarder = Forwarder(self.planset.cluster, pool)
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
            await drain_all(self.services.values(), grace, None)  # SIGQUIT cuts it short
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
            internals = self._take(plan.name, "internal", "tcp")
            cluster = self.planset.cluster
            out.append(ServerService(plan, pool, router, relays, entries, self.limits, self.cap,
                                     internals, cluster))  # fmt: skip
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

    def reconfigure(self, msg: Reconfigure) -> None:
        """SIGHUP or an ingress file reload: apply the new plans in place, then acknowledge."""
        try:
            new = decode_planset(msg.plans)
        except Exception as exc:  # noqa: BLE001 - a bad message keeps the running plans
            event(log, logging.ERROR, "worker.reconfigure_failed", error=str(exc))
            return
        BUSY_POLL.configure(asyncio.get_running_loop(), new.settings.busy_poll_us)
        ACCESS.configure(new.settings.access_log)
        changed = apply_changed(self.services, self.planset, new, self._client)
        self.planset = new
        event(log, logging.DEBUG, "worker.reconfigured", generation=msg.generation,
              changed=",".join(sorted(changed)))  # fmt: skip
        if self._bus is not None:
            self._bus.applied(msg.generation)

    def _lifeline_lost(self) -> None:
        os._exit(0)

    def _quit(self) -> None:
        os._exit(0)
