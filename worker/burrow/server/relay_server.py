"""The relay port: tunnel clients register (BIND), visitors connect (CONNECT).

One relay request is read per connection (burrow.server.inbound: no task per connection); bytes
the peer sent after it are passed on with the connection: the first smux frames of a tunnel
client go to its MuxConnection, the first payload of an rc-era visitor becomes the first bytes of
its stream. Status codes per docs/protocol.md, Relay header.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time

from burrow.common.hostport import strip_port
from burrow.common.ids import TunnelId, random_uuid
from burrow.common.logfmt import event, tunnel_ref
from burrow.common.ratelimit import FailureBan
from burrow.config.cluster import ClusterPlan
from burrow.config.limits import Limits
from burrow.config.plan_types import RelayServerPlan
from burrow.net.conncap import ConnectionCap
from burrow.net.mux import MuxConnection
from burrow.net.rejectlog import RejectLog
from burrow.net.splice import SpliceLeg
from burrow.proto.errors import ProtocolError
from burrow.proto.flags import TUNNEL_ID_FLAG_UDP
from burrow.proto.relay import RelayRequest, RelayResponse, Status, parse_request
from burrow.proto.relay_features import AddrFeature, TunnelFeature
from burrow.proto.smux import SmuxSession
from burrow.routing.ingress import Ingress
from burrow.routing.relay_decision import (
    RelayBind,
    RelayConnect,
    RelayProxy,
    RelayRefuse,
    decide_relay,
)
from burrow.routing.select import effective_weight
from burrow.routing.unnamed import UnnamedTunnels
from burrow.server.forward_in import TLS_RECORD, take_forward
from burrow.server.inbound import Handshake, Inbound, serve_handshakes, spawn
from burrow.server.pool import LocalConnector, TunnelPool
from burrow.server.proxy_accept import gate_for
from burrow.server.relay_bind import SmuxConfigs, bind_reply_address
from burrow.server.relay_transport import serve_layered
from burrow.server.router import Delivery, Router, status_reply
from burrow.server.tunnel_auth import Credentials
from burrow.worker.stats import STATS

log = logging.getLogger("burrow.relay")

# A refused login from a banned source is answered after this delay, like a slow check would be.
BANNED_REPLY_DELAY = 1.0
PROXY_CONNECT_TIMEOUT = 10.0  # a silent peer must not hold a socket forever


class RelayHandshake(Handshake):
    """Reads one relay request, then gives the connection to the server's dispatcher."""

    __slots__ = ("server",)

    def __init__(self, loop: asyncio.AbstractEventLoop, server: RelayServer) -> None:
        super().__init__(loop, server.read_timeout)
        self.server = server
        self.gate = server.proxy_gate

    def inspect(self) -> None:
        buf = self.buf
        cluster = self.server.cluster
        if buf[0] == TLS_RECORD and cluster is not None:
            return take_forward(self.server, cluster, self)  # another node's forward
        try:
            if buf[0] != 1:
                raise ProtocolError(f"bad relay version {buf[0]:#04x}")
            parsed = parse_request(buf, capped=True)
        except ProtocolError as exc:
            return self._reject(str(exc), exc.status)
        if parsed is None:
            return
        req, used = parsed
        trailing = bytes(buf[used:])
        self.server.dispatch(self.finish(), req, trailing)

    def give_up(self, why: str) -> None:
        self._reject(
            "timeout reading the relay request"
            if why == "timeout"
            else f"peer closed after {len(self.buf)} bytes of the relay request"
        )

    def _reject(self, reason: str, status: int | None = None) -> None:
        if status is None:  # a framing error: gost closes without a reply (docs/protocol.md)
            self.server.reject(logging.INFO, "relay.rejected", reason, peer=self.peer)
            return self._drop()
        self.server.reject(logging.INFO, "relay.rejected", reason, peer=self.peer, status=status)
        inbound = self.finish()
        inbound.send(status_reply(Status(status)))
        inbound.close()  # after the reply is flushed


class RelayServer:
    """Serves one relay/tunnel handler service on this worker's copy of its socket."""

    def __init__(
        self,
        plan: RelayServerPlan,
        pool: TunnelPool,
        router: Router,
        limits: Limits | None = None,
        cap: ConnectionCap | None = None,
    ) -> None:
        self.plan = plan
        self.limits = limits if limits is not None else Limits()
        self.reject = RejectLog(log)
        self.cap = cap
        self.bans = FailureBan(self.limits.auth_failures_per_minute, self.limits.auth_ban)
        self.pool = pool
        self.router = router
        self.ingress = Ingress(plan.ingress_rules)
        self.read_timeout = plan.read_timeout
        self.unnamed = UnnamedTunnels(plan.ingress_rules)
        self._say_if_no_rules()
        self.creds = Credentials(plan)
        self.smux = SmuxConfigs(plan)
        self.proxy_gate = gate_for(plan.proxy_protocol, plan.proxy_trusted)
        # A cluster node: a ClientHello on a plain-TCP relay port is a member's forward.
        self.cluster: ClusterPlan | None = None

    def update(self, plan: RelayServerPlan) -> None:
        """Take a reloaded plan (same listeners): new ingress rules and options from now on."""
        had_rules = self.unnamed.rules
        self.plan = plan
        self.ingress = Ingress(plan.ingress_rules)
        self.read_timeout = plan.read_timeout
        self.unnamed = UnnamedTunnels(plan.ingress_rules)
        self.creds = Credentials(plan)
        self.smux = SmuxConfigs(plan)  # new mux settings apply to tunnels registering from now
        self.proxy_gate = gate_for(plan.proxy_protocol, plan.proxy_trusted)
        if had_rules:
            self._say_if_no_rules()

    def _say_if_no_rules(self) -> None:
        """An entry point without rules answers every request 502: say so once (worker 0)."""
        plan = self.plan
        if plan.entrypoints and not plan.ingress_rules and self.pool.worker == 0:
            event(log, logging.WARNING, "ingress.empty", service=plan.name,
                  entrypoints=",".join(str(e) for e in plan.entrypoints),
                  fix="add [[ingresses]] rules (hostname -> tunnel ID) for it")  # fmt: skip

    def _check_named(self, tid: TunnelId, peer: str) -> None:
        """Warn (once per tunnel ID and worker) when no ingress rule routes to ``tid``."""
        if not self.unnamed.pending(tid):
            return  # named or already reported: no need to count connectors (every BIND)
        # A connector of the tunnel on another worker came first; that worker said so.
        local = sum(1 for c in self.pool.local.get(tid, ()) if c.usable)
        if self.unnamed.check(tid, elsewhere=self.pool.count(tid) > local):
            self.reject(logging.WARNING, "tunnel.unnamed", "no ingress rule names this tunnel",
                        tunnel=tunnel_ref(tid.text, log), service=self.plan.name, peer=peer,
                        fix="add an ingress rule (hostname -> this tunnel ID), or ignore this "
                        "if only visitors use the tunnel")  # fmt: skip

    async def serve(self, listener: socket.socket) -> None:
        """Accept until cancelled; each connection starts as a RelayHandshake."""
        if self.plan.transport.kind != "tcp":
            return await serve_layered(self, listener)
        await serve_handshakes(
            listener, lambda loop: RelayHandshake(loop, self), self.cap, self.reject
        )

    def transport_failed(self, peer: str, why: str) -> None:
        """A TLS handshake or WebSocket upgrade on the relay port failed (already closed)."""
        self.reject(logging.INFO, "relay.rejected", why, peer=peer,
                    transport=self.plan.transport.kind)  # fmt: skip

    def dispatch(
        self, inbound: Inbound, req: RelayRequest, trailing: bytes, forwarded: bool = False
    ) -> None:
        """Act on one relay request; ``trailing`` is what the peer sent after it. Never raises.

        ``forwarded``: a gost node's forward on the cluster-internal listener (CONNECT only,
        routed to this node's connectors only)."""
        try:
            self._dispatch(inbound, req, trailing, forwarded)
        except Exception as exc:  # noqa: BLE001 - one connection must never take the worker down
            event(log, logging.WARNING, "relay.error", peer=inbound.peer, error=repr(exc))
            inbound.close()

    def _reply(self, inbound: Inbound, status: Status, why: str) -> None:
        self.reject(logging.INFO, "relay.refused", why, peer=inbound.peer, status=int(status))
        inbound.send(status_reply(status))
        inbound.close()

    def _auth_failed(self, inbound: Inbound, banned: bool) -> None:
        """Count a failed login; a banned source gets the same answer, only later."""
        STATS.count(self.plan.name, "auth_failed")
        source = _source(inbound.peer)
        if not banned and self.bans.failed(source, time.monotonic()):
            event(
                log,
                logging.WARNING,
                "relay.auth_ban",
                source=source,
                seconds=self.limits.auth_ban,
                failures=self.limits.auth_failures_per_minute,
            )
        if not banned:
            return self._reply(inbound, Status.UNAUTHORIZED, "authentication failed")
        self.reject(
            logging.INFO,
            "relay.refused",
            "source banned after failed logins",
            peer=inbound.peer,
            status=int(Status.UNAUTHORIZED),
        )

        def answer() -> None:
            inbound.send(status_reply(Status.UNAUTHORIZED))
            inbound.close()

        asyncio.get_running_loop().call_later(BANNED_REPLY_DELAY, answer)

    def _authorized(self, req: RelayRequest) -> bool:
        return self.creds.check(req)  # global users and per-tunnel credentials (tunnel_auth.py)

    def _dispatch(
        self, inbound: Inbound, req: RelayRequest, trailing: bytes, forwarded: bool
    ) -> None:
        plan = self.plan
        authorized = self._authorized(req)  # the one credential check of a relay request
        banned = False
        if self.creds.enabled:
            # A banned source is refused even with the right password (checked all the same, so
            # the answer takes as long either way).
            banned = self.bans.banned(_source(inbound.peer), time.monotonic())
        decision = decide_relay(
            req,
            dialect=plan.dialect,
            authorized=authorized and not banned,
            proxy_enabled=plan.proxy_enabled,
            direct=plan.direct,
            ingress=self.ingress,
        )
        if isinstance(decision, RelayRefuse):
            if decision.status == Status.UNAUTHORIZED:
                return self._auth_failed(inbound, banned)
            return self._reply(inbound, decision.status, decision.reason)
        if forwarded and not isinstance(decision, RelayConnect):
            return self._reply(inbound, Status.FORBIDDEN, "only CONNECT on the internal listener")
        if isinstance(decision, RelayBind):
            return self._bind(inbound, req, decision, trailing)
        if isinstance(decision, RelayConnect):
            return self._connect(inbound, decision, trailing, req, forwarded)
        spawn(self._proxy(inbound, decision, trailing), "relay-proxy")

    def _bind(self, inbound: Inbound, req: RelayRequest, bind: RelayBind, trailing: bytes) -> None:
        tid, network, wire_dialect = bind.tunnel_id, bind.network, bind.wire_dialect
        cap = self.limits.max_connectors_per_tunnel
        if cap and self.pool.count(tid) >= cap:
            return self._reply(
                inbound,
                Status.SERVICE_UNAVAILABLE,
                f"tunnel {tunnel_ref(tid.text, log)} has {cap} connectors (max_connectors_per_tunnel)",
            )
        authenticated = bool(self.plan.auths) or self.creds.protects_bind(tid)
        weight = effective_weight(tid.weight, authenticated=authenticated)
        cid = TunnelId(random_uuid(), TUNNEL_ID_FLAG_UDP if network == "udp" else 0, weight)
        reply = RelayResponse(
            Status.OK,
            (
                AddrFeature(bind_reply_address(req.addrs, tid)),
                TunnelFeature(cid, 16 if wire_dialect == "relay" else 20),
            ),
        )
        inbound.send(reply.encode())
        loop = asyncio.get_running_loop()
        lim = self.limits
        session = SmuxSession(
            self.smux.get(wire_dialect),
            client=True,
            now=loop.time(),
            max_streams=lim.max_streams_per_session,
            frames_per_turn=lim.frames_per_turn,
        )
        conn_holder: list[LocalConnector] = []

        def closed(_mux: MuxConnection, reason: str) -> None:
            if conn_holder:
                self.pool.remove(conn_holder[0], reason)

        mux = MuxConnection(
            session, on_closed=closed, name=f"tunnel {tid.text}", stream_buffer=lim.stream_buffer
        )
        if not inbound.adopt(mux):
            return
        conn = LocalConnector(
            tid, cid, network, weight, wire_dialect, inbound.peer, mux, service=self.plan.name
        )
        conn_holder.append(conn)
        self.pool.add(conn)
        self._check_named(tid, inbound.peer)
        if trailing:
            mux.data_received(trailing)

    def _connect(
        self,
        inbound: Inbound,
        connect: RelayConnect,
        trailing: bytes,
        req: RelayRequest | None = None,
        forwarded: bool = False,
    ) -> None:
        tid, network, target = connect.tunnel_id, connect.network, connect.target
        d = Delivery(
            kind="visitor",
            service=self.plan.name,
            tunnel_id=tid,
            network=network,
            dialect=self.plan.dialect,
            peer=inbound.peer,
            target=target.hostport() if target is not None else "",
            reply=Status.OK,
            forwarded=forwarded,
            request=req,
        )

        def unavailable() -> None:
            STATS.count(self.plan.name, "visitor_503")
            self._reply(
                inbound,
                Status.SERVICE_UNAVAILABLE,
                f"tunnel {tunnel_ref(tid.text, log)} has no {network} connector",
            )

        # What an rc-era visitor sent right after its request travels as the stream's first bytes.
        self.router.route(d, inbound, trailing, unavailable)

    async def _proxy(self, inbound: Inbound, proxy: RelayProxy, trailing: bytes) -> None:
        """Plain relay CONNECT (``relay.proxy`` on): dial the Addr target and splice."""
        target = proxy.target
        loop = asyncio.get_running_loop()
        down, up = SpliceLeg("visitor"), SpliceLeg("target")
        down.peer, up.peer = up, down
        try:
            async with asyncio.timeout(PROXY_CONNECT_TIMEOUT):
                transport, _ = await loop.create_connection(lambda: up, target.host, target.port)
        except (OSError, TimeoutError) as exc:
            return self._reply(
                inbound, Status.NETWORK_UNREACHABLE, f"cannot reach {target.hostport()}: {exc}"
            )
        inbound.send(status_reply(Status.OK))
        if trailing:
            transport.write(trailing)
        if not await inbound.join(down):
            transport.close()
            return
        event(log, logging.DEBUG, "relay.proxy", peer=inbound.peer, target=target.hostport())


def _source(peer: str) -> str:
    """The source address of ``host:port`` / ``[v6]:port`` (the ban and cap key)."""
    return strip_port(peer)
