"""App: everything one worker process runs, in one TaskGroup.

Boot: decode the config the supervisor sent, build the service plans, join the bus, start the
handoff inbox, then one task per listener (relay port, entry points, visitors) and one per tunnel
client. Ready is sent once all of that runs. SIGTERM drains: stop accepting, give open
connections up to the grace period, exit. The lifeline closing (supervisor gone) exits at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from collections.abc import Coroutine
from typing import Any

import msgspec

from burrow.common.logfmt import event
from burrow.config.plan import RelayServerPlan, TunnelClientPlan, VisitorPlan, build_plans
from burrow.config.schema import Config
from burrow.ipc.messages import Reconfigure
from burrow.ipc.spec import WorkerSpec
from burrow.net.busypoll import BUSY_POLL
from burrow.server.entrypoint import EntryPoint
from burrow.server.handoff import HandoffInbox, HandoffOutbox
from burrow.server.pool import TunnelPool
from burrow.server.relay_server import RelayServer
from burrow.server.router import Router
from burrow.worker.bus import BusClient
from burrow.worker.lifeline import watch_lifeline

log = logging.getLogger("burrow.worker")

DRAIN_GRACE = 10.0


class BootError(Exception):
    """The worker cannot start: bad spec, config or sockets. The supervisor must not retry."""


class App:
    """One worker: services, bus, handoff, signals."""

    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        try:
            config = msgspec.msgpack.decode(spec.config, type=Config)
            self.plans = build_plans(config, source=spec.source)
            self.busy_poll_us = config.burrow.busy_poll_us
            self.limits = config.burrow.limits
        except Exception as exc:
            raise BootError(f"config: {exc}") from exc
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
        self.servers: dict[str, tuple[RelayServer, EntryPoint]] = {}
        self._stop = asyncio.Event()
        self._fast_exit = False

    def _take(self, service: str, role: str, network: str) -> list[socket.socket]:
        return self.sockets.pop((service, role, network), [])

    async def run(self) -> None:
        """Serve until told to stop."""
        loop = asyncio.get_running_loop()
        spec = self.spec
        BUSY_POLL.configure(loop, self.busy_poll_us)
        watch_lifeline(loop, spec.lifeline_fd, self._lifeline_lost)
        loop.add_signal_handler(signal.SIGTERM, self._stop.set)
        loop.add_signal_handler(signal.SIGINT, self._stop.set)
        loop.add_signal_handler(signal.SIGQUIT, self._quit)
        bus = BusClient(spec)
        bus.on_reconfigure = self.reconfigure
        try:
            await bus.start()
        except Exception as exc:
            raise BootError(f"cannot join the supervisor's bus: {exc!r}") from exc
        outbox = HandoffOutbox(spec) if spec.outbox_fds else None
        pool = TunnelPool(spec.index, bus)
        router = Router(pool, outbox)
        inbox = HandoffInbox(spec, router.adopt)
        inbox.start()
        serving: list[asyncio.Task[None]] = []
        try:
            async with asyncio.TaskGroup() as tg:
                for coro, name in self._services(pool, router):
                    serving.append(tg.create_task(coro, name=name))
                bus.ready()
                event(log, logging.DEBUG, "worker.ready", index=spec.index, pid=os.getpid())
                await self._stop.wait()
                event(log, logging.INFO, "worker.draining", index=spec.index)
                for t in serving:
                    t.cancel()
                await self._drain(pool)
        finally:
            inbox.close()
            if outbox is not None:
                outbox.close()
            # Tunnels still closing after this are dropped from the registry by the supervisor
            # when this worker exits; the bus is gone by then.
            pool.bus = None
            await bus.close()

    def _services(
        self, pool: TunnelPool, router: Router
    ) -> list[tuple[Coroutine[Any, Any, None], str]]:
        # Imported here: the client side is only loaded by workers that run it.
        out: list[tuple[Coroutine[Any, Any, None], str]] = []
        for plan in self.plans:
            if isinstance(plan, RelayServerPlan):
                relay = RelayServer(plan, pool, router, self.limits)
                entry = EntryPoint(plan, router)
                self.servers[plan.name] = (relay, entry)
                for sock in self._take(plan.name, "relay", "tcp"):
                    out.append((relay.serve(sock), f"relay:{plan.name}"))
                for sock in self._take(plan.name, "entrypoint", "tcp"):
                    out.append((entry.serve(sock), f"entrypoint:{plan.name}"))
            elif isinstance(plan, TunnelClientPlan):
                from burrow.client.tunnel import TunnelClient

                client = TunnelClient(plan, worker=self.spec.index, limits=self.limits)
                out.append((client.run(), f"client:{plan.name}"))
            elif isinstance(plan, VisitorPlan):
                for sock in self._take(plan.name, "visitor", plan.network):
                    if plan.network == "tcp":
                        from burrow.client.visitor import serve_tcp_visitor

                        out.append((serve_tcp_visitor(plan, sock), f"visitor:{plan.name}"))
                    else:
                        from burrow.client.udp_visitor import serve_udp_visitor

                        out.append((serve_udp_visitor(plan, sock), f"visitor:{plan.name}"))
        return out

    def reconfigure(self, msg: Reconfigure) -> None:
        """SIGHUP applied in place: new ingress rules and server options, same listeners."""
        try:
            config = msgspec.msgpack.decode(msg.config, type=Config)
            plans = build_plans(config, source=self.spec.source)
        except Exception as exc:  # noqa: BLE001 - a bad reload keeps the running config
            event(log, logging.ERROR, "reload.failed", error=str(exc))
            return
        BUSY_POLL.configure(asyncio.get_running_loop(), config.burrow.busy_poll_us)
        for plan in plans:
            if isinstance(plan, RelayServerPlan) and plan.name in self.servers:
                relay, entry = self.servers[plan.name]
                relay.update(plan)
                entry.update(plan)
        event(log, logging.DEBUG, "worker.reconfigured", generation=msg.generation)

    async def _drain(self, pool: TunnelPool) -> None:
        """Give open streams up to the grace period, then close the tunnels."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DRAIN_GRACE
        while loop.time() < deadline and any(
            c.mux.streams for conns in pool.local.values() for c in conns
        ):
            waiter = loop.create_future()
            handle = loop.call_later(0.05, waiter.set_result, None)
            try:
                await waiter
            finally:
                handle.cancel()
        for conns in list(pool.local.values()):
            for c in list(conns):
                c.mux.close("worker stopping")

    def _lifeline_lost(self) -> None:
        os._exit(0)

    def _quit(self) -> None:
        os._exit(0)
