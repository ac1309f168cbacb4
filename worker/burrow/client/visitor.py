"""TCP visitor: a private entry point that reaches a tunnel by ID with one CONNECT per connection.

Spec: docs/protocol.md, CONNECT (visitor side, server replies) and Features.

    visitor app -> [accept] -> CONNECT(target, tunnel ID) -> server -> tunnel -> client -> target
    server -> visitor: 01 STATUS FEALEN [features] | payload ...
                       \\___ stripped here ______/

The CONNECT goes out at once and bytes are piped both ways without waiting for the reply: that
works with rc-era servers, which hold the reply until the first payload byte comes back from the
tunnel (a server-speaks-first target needs this), and with servers that reply at once. The reply
is parsed off the front of the server's byte stream; a refusal closes the visitor connection.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import cast

from burrow.common.logfmt import event
from burrow.config.plan_types import LISTEN_BACKLOG, VisitorPlan
from burrow.net.busypoll import poke
from burrow.net.conncap import ConnectionCap
from burrow.net.drain import ConnCount
from burrow.net.layered import dial
from burrow.net.peer import peer_host, peer_text
from burrow.net.rejectlog import RejectLog
from burrow.net.splice import SpliceLeg
from burrow.net.tasks import TaskSet, deadline_missed
from burrow.proto.addr import join_hostport
from burrow.proto.relay import RelayReader
from burrow.proto.sniff import MAX_SNIFF_BYTES, NEED_MORE, Sniffed, http_host_port, sniff
from burrow.routing.nodes import RoundRobin

from .dial import build_connect_request, dial_host

log = logging.getLogger("burrow.client.visitor")

MAX_CACHED_REQUESTS = 256  # sniffing visitors may name many targets


class VisitorFront(asyncio.Protocol):
    """An accepted visitor connection until its CONNECT is on the way to the server.

    Collects the first bytes (needed when sniffing picks the target), starts one dial, and when
    the server leg is connected hands the transport to the visitor leg of the splice.
    """

    __slots__ = ("buf", "ctx", "handed", "paused", "peer", "started", "timer", "transport")

    def __init__(self, ctx: _VisitorService) -> None:
        self.ctx = ctx
        self.transport: asyncio.Transport | None = None
        self.peer = ""
        self.buf = bytearray()
        self.timer: asyncio.TimerHandle | None = None
        self.started = False
        self.paused = False
        self.handed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.ctx.active.opened()
        self.peer = peer_text(transport)
        cap = self.ctx.cap
        if cap is not None:
            why = cap.admit(transport, peer_host(transport))
            if why is not None:
                self.ctx.reject(logging.INFO, "visitor.refused", why, peer=self.peer)
                self.transport.abort()
                return
        plan = self.ctx.plan
        if plan.sniffing:
            self.timer = self.ctx.loop.call_later(plan.sniffing_timeout, self._sniff_expired)
        else:
            self._start(None)

    def data_received(self, data: bytes) -> None:
        poke()
        self.buf += data
        if not self.started:
            result = sniff(self.buf)
            if result is NEED_MORE and len(self.buf) < MAX_SNIFF_BYTES:
                return
            self._start(_sniffed_target(result))
        elif len(self.buf) >= MAX_SNIFF_BYTES and not self.paused and self.transport is not None:
            self.paused = True  # the server leg is still connecting: hold the rest in the kernel
            self.transport.pause_reading()

    def eof_received(self) -> bool | None:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._stop_timer()
        if not self.handed:
            self.ctx.active.closed()

    def _sniff_expired(self) -> None:
        self.timer = None
        if not self.started and self.transport is not None:
            self._start(None)

    def _stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _start(self, target: str | None) -> None:
        self.started = True
        self._stop_timer()
        ctx = self.ctx
        if target is None:
            node = ctx.cursor.pick(ctx.plan.targets)
            target = node.addr if node is not None else None
        if target is None:
            event(log, logging.DEBUG, "visitor.no_target", service=ctx.plan.name, peer=self.peer)
            if self.transport is not None:
                self.transport.close()
            return
        ctx.tasks.spawn(
            ctx.loop,
            self._connect(target),
            ctx.plan.server.connect_timeout,
        )

    async def _connect(self, target: str) -> None:
        plan = self.ctx.plan
        node = plan.server
        visitor_leg = _VisitorLeg(self.ctx.active)
        server_leg = SpliceLeg("server", RelayReader("response"))
        visitor_leg.peer, server_leg.peer = server_leg, visitor_leg
        server_leg.target = visitor_leg.target = target
        server_leg.service = visitor_leg.service = plan.name
        server_leg.pending.append(self.ctx.request(target, self.peer))
        try:
            await dial(
                node.transport, dial_host(node.addr.host), node.addr.port, lambda: server_leg
            )
        except (OSError, TimeoutError, asyncio.CancelledError) as exc:
            if self.transport is not None:
                self.transport.abort()
            server_leg.abort_both()
            if isinstance(exc, asyncio.CancelledError) and not deadline_missed(exc):
                raise
            event(log, logging.DEBUG, "visitor.failed", service=plan.name, peer=self.peer,
                  error=str(exc) if isinstance(exc, OSError) else "timeout")  # fmt: skip
            return
        t = self.transport
        if t is None:  # the visitor left while we dialled
            server_leg.abort_both()
            return
        assert server_leg.transport is not None
        if self.buf:
            # The request went out in connection_made; what the visitor sent meanwhile follows.
            server_leg.transport.write(bytes(self.buf))
            self.buf = bytearray()
        self.handed = True  # from here the visitor leg reports the connection's end
        t.set_protocol(visitor_leg)
        if self.paused:
            t.resume_reading()  # before connection_made, which may pause it for its own reasons
        visitor_leg.connection_made(t)
        event(
            log,
            logging.DEBUG,
            "visitor.connected",
            service=plan.name,
            peer=self.peer,
            target=target,
        )


class _VisitorLeg(SpliceLeg):
    """The visitor's side of the splice: its end is the end of the visitor connection."""

    def __init__(self, active: ConnCount) -> None:
        super().__init__("visitor")
        self.active = active

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.active.closed()


def _sniffed_target(result: object) -> str | None:
    """ "host:port" named by a sniffed HTTP Host / TLS SNI, or None."""
    if not isinstance(result, Sniffed) or not result.host:
        return None
    if result.protocol == "tls":
        return join_hostport(result.host, 443)
    try:
        host, port = http_host_port(result.host, 80)
    except ValueError:
        return None
    return join_hostport(host, port)


class _VisitorService:
    """Per-service state: plan, target cursor, dials in progress, open connections."""

    def __init__(
        self, plan: VisitorPlan, loop: asyncio.AbstractEventLoop, cap: ConnectionCap | None
    ) -> None:
        self.plan = plan
        self.loop = loop
        self.cap = cap
        self.reject = RejectLog(log)
        self.cursor = RoundRobin()
        self.tasks = TaskSet()
        self.active = ConnCount()
        self._requests: dict[str, bytes] = {}

    def reset(self, plan: VisitorPlan) -> None:
        """A new plan: fresh target cursor, no cached requests."""
        self.plan = plan
        self.cursor = RoundRobin()
        self._requests.clear()

    def request(self, target: str, peer: str) -> bytes:
        """The CONNECT for ``target``; the relay dialect's does not name the peer, so it is kept."""
        node = self.plan.server
        if node.dialect != "relay":
            return build_connect_request(node, self.plan.tunnel_id, target, udp=False, src=peer)
        cached = self._requests.get(target)
        if cached is None:
            if len(self._requests) >= MAX_CACHED_REQUESTS:
                self._requests.clear()
            cached = self._requests[target] = build_connect_request(
                node, self.plan.tunnel_id, target, udp=False, src=peer
            )
        return cached


class TcpVisitor:
    """The TCP visitor service: start, apply a new plan, drain, close (worker lifecycle)."""

    def __init__(
        self, plan: VisitorPlan, sock: socket.socket, cap: ConnectionCap | None = None
    ) -> None:
        self.name = plan.name
        self.plan = plan
        self.sock = sock
        self.cap = cap  # the worker's connection cap, shared with its other public listeners
        self._ctx: _VisitorService | None = None
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        """Accept on the inherited listening socket (uvloop accepts, no task per connection)."""
        loop = asyncio.get_running_loop()
        ctx = self._ctx = _VisitorService(self.plan, loop, self.cap)
        self._server = await loop.create_server(
            lambda: VisitorFront(ctx), sock=self.sock, backlog=LISTEN_BACKLOG
        )

    def apply(self, plan: VisitorPlan) -> None:
        """New connections use ``plan`` (same listener); open ones keep the target they have."""
        self.plan = plan
        if self._ctx is not None:
            self._ctx.reset(plan)

    async def drain(self) -> None:
        """Stop accepting; return when every open visitor connection has ended."""
        if self._server is not None:
            self._server.close()
        if self._ctx is not None:
            await self._ctx.active.wait_idle()

    def close(self) -> None:
        """Stop accepting and cancel the dials still running (open splices go with the loop)."""
        if self._server is not None:
            self._server.close()
        if self._ctx is not None:
            self._ctx.tasks.cancel_all()


async def serve_tcp_visitor(
    plan: VisitorPlan, sock: socket.socket, cap: ConnectionCap | None = None
) -> None:
    """Run a TcpVisitor until cancelled (for callers that want one coroutine)."""
    visitor = TcpVisitor(plan, sock, cap)
    await visitor.start()
    try:
        await asyncio.Future()
    finally:
        visitor.close()
