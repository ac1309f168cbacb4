"""The relay port: tunnel clients register (BIND), visitors connect (CONNECT).

One relay request is read per connection (burrow.server.inbound: no task per connection); bytes
the peer sent after it are passed on with the connection: the first smux frames of a tunnel
client go to its MuxConnection, the first payload of an rc-era visitor becomes the first bytes of
its stream. Status codes per tunnel-mode.md §11.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import socket
import uuid

from burrow.common.ids import FLAG_UDP, TunnelId
from burrow.common.logfmt import event
from burrow.config.limits import Limits
from burrow.config.plan import RelayServerPlan
from burrow.net.mux import MuxConnection
from burrow.net.splice import SpliceLeg
from burrow.proto.addr import Address
from burrow.proto.errors import ProtocolError
from burrow.proto.relay import Cmd, RelayRequest, RelayResponse, Status, parse_request
from burrow.proto.relay_features import NETWORK_UDP, AddrFeature, TunnelFeature
from burrow.proto.smux import SmuxConfig, SmuxSession
from burrow.routing.ingress import Ingress
from burrow.server.inbound import Handshake, Inbound, serve_handshakes, spawn
from burrow.server.pool import LocalConnector, TunnelPool
from burrow.server.router import Delivery, Router, status_reply

log = logging.getLogger("burrow.relay")

DEFAULT_READ_TIMEOUT = 15.0
PROXY_CONNECT_TIMEOUT = 10.0  # a silent peer must not hold a socket forever


def endpoint_name(tunnel_id: TunnelId) -> str:
    """gost's endpoint: first 8 bytes of MD5 of the tunnel ID text, hex (tunnel-mode.md §2.3)."""
    return hashlib.md5(tunnel_id.text.encode()).hexdigest()[:16]


def smux_config(plan: RelayServerPlan, wire_dialect: str) -> SmuxConfig:
    """smux settings for a tunnel connection: the request's dialect unless mux.version says."""
    version = plan.mux_version_override or (1 if wire_dialect == "relay" else 2)
    mux = plan.mux
    if wire_dialect == plan.dialect:
        stream_buffer = mux.max_stream_buffer
    else:
        stream_buffer = 65536 if wire_dialect == "relay" else 1048576
    return SmuxConfig(
        version=version,
        max_frame_size=mux.max_frame_size,
        max_receive_buffer=mux.max_receive_buffer,
        max_stream_buffer=stream_buffer,
        keepalive_interval=mux.keepalive_interval,
        keepalive_timeout=mux.keepalive_timeout,
        keepalive_disabled=mux.keepalive_disabled,
    )


class RelayHandshake(Handshake):
    """Reads one relay request, then gives the connection to the server's dispatcher."""

    __slots__ = ("server",)

    def __init__(self, loop: asyncio.AbstractEventLoop, server: RelayServer) -> None:
        super().__init__(loop, server.read_timeout)
        self.server = server

    def inspect(self) -> None:
        buf = self.buf
        try:
            if buf[0] != 1:
                raise ProtocolError(f"bad relay version {buf[0]:#04x}")
            parsed = parse_request(buf)
        except ProtocolError as exc:
            return self._reject(str(exc))
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

    def _reject(self, reason: str) -> None:
        event(log, logging.INFO, "relay.rejected", peer=self.peer, reason=reason)
        self._drop()


class RelayServer:
    """Serves one relay/tunnel handler service on this worker's copy of its socket."""

    def __init__(
        self, plan: RelayServerPlan, pool: TunnelPool, router: Router, limits: Limits | None = None
    ) -> None:
        self.plan = plan
        self.limits = limits if limits is not None else Limits()
        self.pool = pool
        self.router = router
        self.ingress = Ingress(plan.ingress_rules)
        self.read_timeout = plan.read_timeout or DEFAULT_READ_TIMEOUT

    def update(self, plan: RelayServerPlan) -> None:
        """Take a reloaded plan (same listeners): new ingress rules and options from now on."""
        self.plan = plan
        self.ingress = Ingress(plan.ingress_rules)
        self.read_timeout = plan.read_timeout or DEFAULT_READ_TIMEOUT

    async def serve(self, listener: socket.socket) -> None:
        """Accept until cancelled; each connection starts as a RelayHandshake."""
        await serve_handshakes(listener, lambda loop: RelayHandshake(loop, self))

    def dispatch(self, inbound: Inbound, req: RelayRequest, trailing: bytes) -> None:
        """Act on one relay request; ``trailing`` is what the peer sent after it. Never raises."""
        try:
            self._dispatch(inbound, req, trailing)
        except Exception as exc:  # noqa: BLE001 - one connection must never take the worker down
            event(log, logging.WARNING, "relay.error", peer=inbound.peer, error=repr(exc))
            inbound.close()

    def _reply(self, inbound: Inbound, status: Status, why: str) -> None:
        event(log, logging.INFO, "relay.refused", peer=inbound.peer, status=int(status), reason=why)
        inbound.send(status_reply(status))
        inbound.close()

    def _authorized(self, req: RelayRequest) -> bool:
        if not self.plan.auths:
            return True
        ua = req.user_auth
        user, password = (ua.username, ua.password) if ua is not None else ("", "")
        ok = False
        for u, p in self.plan.auths:
            ok |= hmac.compare_digest(
                u.encode(), user.encode(errors="surrogateescape")
            ) & hmac.compare_digest(p.encode(), password.encode(errors="surrogateescape"))
        return ok

    def _dispatch(self, inbound: Inbound, req: RelayRequest, trailing: bytes) -> None:
        tid = req.tunnel_id
        wire_dialect = "tunnel" if (req.tunnel_len or 16) != 16 else "relay"
        if self.plan.dialect == "tunnel" and (tid is None or tid.is_zero):
            return self._reply(inbound, Status.BAD_REQUEST, "missing tunnel ID")
        if not self._authorized(req):
            return self._reply(inbound, Status.UNAUTHORIZED, "authentication failed")
        udp = req.udp_flag or req.network == NETWORK_UDP
        network = "udp" if udp else "tcp"
        if req.command == Cmd.BIND:
            if tid is None or tid.is_zero:
                return self._reply(inbound, Status.FORBIDDEN, "plain BIND is not enabled")
            return self._bind(inbound, req, tid, network, wire_dialect, trailing)
        if req.command in (Cmd.CONNECT, 0) and not (
            self.plan.dialect == "tunnel" and req.command == 0
        ):
            if tid is None or tid.is_zero:
                if not self.plan.proxy_enabled:
                    return self._reply(
                        inbound, Status.FORBIDDEN, "plain relay proxying is disabled (no tunnel ID)"
                    )
                return spawn(self._proxy(inbound, req, network, trailing), "relay-proxy")
            return self._connect(inbound, req, tid, network, wire_dialect, trailing)
        return self._reply(inbound, Status.BAD_REQUEST, f"unsupported command {req.cmd:#04x}")

    def _bind(
        self,
        inbound: Inbound,
        req: RelayRequest,
        tid: TunnelId,
        network: str,
        wire_dialect: str,
        trailing: bytes,
    ) -> None:
        cid = TunnelId(uuid.uuid4().bytes, FLAG_UDP if network == "udp" else 0, tid.weight)
        addrs = req.addrs
        port = addrs[-1].port if addrs else 0
        host = addrs[-1].host if addrs else ""
        if not host or host in ("0.0.0.0", "::"):
            host = endpoint_name(tid)
        reply = RelayResponse(
            Status.OK,
            (
                AddrFeature(Address.from_hostport(f"{host}:{port}")),
                TunnelFeature(cid, 16 if wire_dialect == "relay" else 20),
            ),
        )
        inbound.send(reply.encode())
        loop = asyncio.get_running_loop()
        lim = self.limits
        session = SmuxSession(
            smux_config(self.plan, wire_dialect),
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
        conn = LocalConnector(tid, cid, network, tid.weight, wire_dialect, inbound.peer, mux)
        conn_holder.append(conn)
        self.pool.add(conn)
        if trailing:
            mux.data_received(trailing)

    def _connect(
        self,
        inbound: Inbound,
        req: RelayRequest,
        tid: TunnelId,
        network: str,
        wire_dialect: str,
        trailing: bytes,
    ) -> None:
        addrs = req.addrs
        # Two Addr features: source then destination (tunnel dialect). One: the target (relay
        # dialect); gost's tunnel handler would take a lone Addr as the source and fail the
        # route, Burrow accepts both conventions (tunnel-mode.md vectors x1).
        target = addrs[1] if len(addrs) >= 2 else (addrs[-1] if addrs else None)
        host = target.host if target is not None else ""
        if not self.plan.direct:
            route = self.ingress.lookup(host) if host else None
            if route is None or route.tunnel_id != tid:
                return self._reply(
                    inbound,
                    Status.HOST_UNREACHABLE,
                    f"host {host!r} is not routed to tunnel {tid.text}",
                )
        d = Delivery(
            kind="visitor",
            service=self.plan.name,
            tunnel_id=tid,
            network=network,
            dialect=self.plan.dialect,
            peer=inbound.peer,
            target=target.hostport() if target is not None else "",
            reply=Status.OK,
        )

        def unavailable() -> None:
            self._reply(
                inbound, Status.SERVICE_UNAVAILABLE, f"tunnel {tid.text} has no {network} connector"
            )

        # What an rc-era visitor sent right after its request travels as the stream's first bytes.
        self.router.route(d, inbound, trailing, unavailable)

    async def _proxy(
        self, inbound: Inbound, req: RelayRequest, network: str, trailing: bytes
    ) -> None:
        """Plain relay CONNECT (``relay.proxy`` on): dial the Addr target and splice."""
        addrs = req.addrs
        target = addrs[-1] if addrs else None
        if network != "tcp" or target is None or not target.host:
            return self._reply(inbound, Status.BAD_REQUEST, "proxy needs a TCP target")
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
