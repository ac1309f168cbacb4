"""The worker lifecycle every role implements: start, apply a new plan, drain, close.

``Service`` is the interface; the server role (relay port + entry points) and the UDP visitor
are adapted here, the tunnel client (burrow.client.tunnel.TunnelClient) and the TCP visitor
(burrow.client.visitor.TcpVisitor) implement it themselves. Each service owns its tasks.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

from burrow.config.cluster import ClusterPlan
from burrow.config.limits import Limits
from burrow.config.plan_types import RelayServerPlan, TunnelClientPlan, VisitorPlan
from burrow.config.planset import PlanSet
from burrow.net.conncap import ConnectionCap
from burrow.net.drain import streams_done

if TYPE_CHECKING:
    from burrow.client.udp_visitor import UdpVisitor
    from burrow.server.pool import TunnelPool
    from burrow.server.router import Router


class Service(Protocol):
    """One service of a worker."""

    name: str

    async def start(self) -> None:
        """Begin serving (returns once listening / the session loop runs)."""

    def apply(self, plan: Any) -> None:
        """Serve new connections with ``plan`` (same listeners)."""

    async def drain(self) -> None:
        """Stop accepting; return when in-flight connections have ended (caller bounds it)."""

    def close(self) -> None:
        """Stop now and drop what is still open."""


class ServerService:
    """Relay port(s) and entry points of one RelayServerPlan, over the worker's tunnel pool."""

    def __init__(
        self,
        plan: RelayServerPlan,
        pool: TunnelPool,
        router: Router,
        relays: list[socket.socket],
        entries: list[socket.socket],
        limits: Limits,
        cap: ConnectionCap | None = None,
        internals: list[socket.socket] | None = None,
        cluster: ClusterPlan | None = None,
    ) -> None:
        # Imported here: a one-process tunnel client or visitor never loads the server side.
        from burrow.server.entrypoint import EntryPoint
        from burrow.server.relay_server import RelayServer

        self.name = plan.name
        self.pool = pool
        self.relay = RelayServer(plan, pool, router, limits, cap)
        self.relay.cluster = cluster
        self.entry = EntryPoint(plan, router, cap)
        self._socks = [(self.relay.serve, s) for s in relays] + [
            (self.entry.serve, s) for s in entries
        ]
        # [burrow.cluster] internal: gost nodes' forwards (sniffed like an entry point, plus
        # relay CONNECT), routed to this node's connectors only.
        self.internal = EntryPoint(plan, router, cap, internal=self.relay) if internals else None
        if self.internal is not None:
            self._socks += [(self.internal.serve, s) for s in internals or ()]
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """One accept task per inherited socket."""
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(serve(s), name=f"server:{self.name}") for serve, s in self._socks
        ]

    def apply(self, plan: RelayServerPlan) -> None:
        """New ingress rules and options, live: no tunnel or connection is dropped."""
        self.relay.update(plan)
        self.entry.update(plan)
        if self.internal is not None:
            self.internal.update(plan)

    async def drain(self) -> None:
        """Stop accepting; return when no tunnel of this worker carries a stream."""
        for t in self._tasks:
            t.cancel()
        await streams_done(c.mux for conns in list(self.pool.local.values()) for c in conns)

    def close(self) -> None:
        """Close every tunnel connection of this worker."""
        for t in self._tasks:
            t.cancel()
        for conns in list(self.pool.local.values()):
            for c in list(conns):
                c.mux.close("worker stopping")


class UdpVisitorService:
    """A UDP visitor. Datagram sessions have no end a drain could wait for: it closes at once."""

    def __init__(self, plan: VisitorPlan, sock: socket.socket) -> None:
        self.name = plan.name
        self.plan = plan
        self.sock = sock
        self._task: asyncio.Task[None] | None = None
        self._proto: UdpVisitor | None = None

    async def start(self) -> None:
        """Serve the bound socket in a task this service owns."""
        from burrow.client.udp_visitor import serve_udp_visitor

        def got(proto: UdpVisitor) -> None:
            self._proto = proto

        loop = asyncio.get_running_loop()
        self._task = loop.create_task(serve_udp_visitor(self.plan, self.sock, got))

    def apply(self, plan: VisitorPlan) -> None:
        """New sources use the new plan (same socket)."""
        self.plan = plan
        if self._proto is not None:
            self._proto.apply(plan)

    async def drain(self) -> None:
        """Nothing to wait for (see the class docstring)."""

    def close(self) -> None:
        """Close the sessions and the socket."""
        if self._task is not None:
            self._task.cancel()


async def drain_all(services: Iterable[Service], grace: float, now: asyncio.Event | None) -> None:
    """Every service drains at once; give up after ``grace`` or when ``now`` is set."""
    drains = [asyncio.ensure_future(s.drain()) for s in services]
    everything: asyncio.Future[Any] = asyncio.gather(*drains)
    waits: list[asyncio.Future[Any]] = [everything]
    if now is not None:
        waits.append(asyncio.ensure_future(now.wait()))
    try:
        await asyncio.wait(waits, timeout=grace, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for fut in waits:
            fut.cancel()


def apply_changed(
    services: dict[str, Service],
    old: PlanSet,
    new: PlanSet,
    make_client: Callable[[TunnelClientPlan], Service],
) -> set[str]:
    """Apply ``new`` in place to the running ``services``; returns the changed service names.

    A changed service takes its new plan; a new tunnel client is started; a removed one is
    closed. Listener services cannot come or go: the supervisor refuses a reload that changes
    the set of listeners.
    """
    changed = old.changed(new)
    old_clients = {p.name for p in old.clients}
    plans: dict[str, Any] = {p.name: p for p in new.plans()}
    for name in changed:
        service = services.get(name)
        plan = plans.get(name)
        if service is not None and plan is not None:
            service.apply(plan)
        elif service is None and isinstance(plan, TunnelClientPlan):
            client = services[name] = make_client(plan)
            asyncio.ensure_future(client.start())
        elif service is not None and plan is None and name in old_clients:
            del services[name]
            service.close()
    return changed
