"""The relay port: tunnel clients register (BIND), visitors connect (CONNECT).

One relay request is read per connection, exactly its own bytes (header, then FEALEN bytes), so
whatever the peer sent after it stays in the kernel: the smux frames of a tunnel client, or the
first payload of an rc-era visitor, are read later by the transport that takes the socket over, or
by the worker the socket is handed to. Status codes per tunnel-mode.md §11.
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
from burrow.config.plan import RelayServerPlan
from burrow.net.mux import MuxConnection
from burrow.net.splice import SpliceLeg
from burrow.proto.addr import Address
from burrow.proto.errors import ProtocolError
from burrow.proto.relay import Cmd, RelayRequest, RelayResponse, Status, parse_request
from burrow.proto.relay_features import NETWORK_UDP, AddrFeature, TunnelFeature
from burrow.proto.smux import SmuxConfig, SmuxSession
from burrow.routing.ingress import Ingress
from burrow.worker.pool import LocalConnector, TunnelPool
from burrow.worker.router import Delivery, Router
from burrow.worker.sockio import PeerClosed, accept_loop, peer_name, recv_exact

log = logging.getLogger("burrow.relay")

HEADER_LEN = 4
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
        version=version, max_frame_size=mux.max_frame_size,
        max_receive_buffer=mux.max_receive_buffer, max_stream_buffer=stream_buffer,
        keepalive_interval=mux.keepalive_interval, keepalive_timeout=mux.keepalive_timeout,
        keepalive_disabled=mux.keepalive_disabled)


class RelayServer:
    """Serves one relay/tunnel handler service on this worker's copy of its socket."""

    def __init__(self, plan: RelayServerPlan, pool: TunnelPool, router: Router) -> None:
        self.plan = plan
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
        """Accept loop; each connection is handled in its own task."""
        await accept_loop(listener, self.handle, "relay-conn")

    async def handle(self, sock: socket.socket) -> None:
        """Read one relay request and act on it; never raises."""
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = peer_name(sock)
        try:
            req = await self._read_request(sock)
        except (TimeoutError, PeerClosed, OSError, ProtocolError) as exc:
            reason = "timeout reading the relay request" if isinstance(exc, TimeoutError) else str(exc)
            event(log, logging.INFO, "relay.rejected", peer=peer, reason=reason)
            sock.close()
            return
        try:
            await self._dispatch(sock, peer, req)
        except Exception as exc:  # noqa: BLE001 - one connection must never take the worker down
            event(log, logging.WARNING, "relay.error", peer=peer, error=repr(exc))
            sock.close()

    async def _read_request(self, sock: socket.socket) -> RelayRequest:
        async with asyncio.timeout(self.read_timeout):
            head = await recv_exact(sock, 1)
            if head[0] != 1:
                raise ProtocolError(f"bad relay version {head[0]:#04x}")
            head += await recv_exact(sock, HEADER_LEN - 1)
            length = int.from_bytes(head[2:4], "big")
            body = await recv_exact(sock, length) if length else b""
        parsed = parse_request(head + body)
        if parsed is None:  # cannot happen: we read exactly FEALEN bytes
            raise ProtocolError("truncated relay request")
        return parsed[0]

    def _reply(self, sock: socket.socket, peer: str, status: Status, why: str) -> None:
        event(log, logging.INFO, "relay.refused", peer=peer, status=int(status), reason=why)
        try:
            sock.send(RelayResponse(status).encode())
        except OSError:
            pass
        sock.close()

    def _authorized(self, req: RelayRequest) -> bool:
        if not self.plan.auths:
            return True
        ua = req.user_auth
        user, password = (ua.username, ua.password) if ua is not None else ("", "")
        ok = False
        for u, p in self.plan.auths:
            ok |= hmac.compare_digest(u.encode(), user.encode(errors="surrogateescape")) & \
                hmac.compare_digest(p.encode(), password.encode(errors="surrogateescape"))
        return ok

    async def _dispatch(self, sock: socket.socket, peer: str, req: RelayRequest) -> None:
        tid = req.tunnel_id
        wire_dialect = "tunnel" if (req.tunnel_len or 16) != 16 else "relay"
        if self.plan.dialect == "tunnel" and (tid is None or tid.is_zero):
            return self._reply(sock, peer, Status.BAD_REQUEST, "missing tunnel ID")
        if not self._authorized(req):
            return self._reply(sock, peer, Status.UNAUTHORIZED, "authentication failed")
        udp = req.udp_flag or req.network == NETWORK_UDP
        network = "udp" if udp else "tcp"
        if req.command == Cmd.BIND:
            if tid is None or tid.is_zero:
                return self._reply(sock, peer, Status.FORBIDDEN, "plain BIND is not enabled")
            return await self._bind(sock, peer, req, tid, network, wire_dialect)
        if req.command in (Cmd.CONNECT, 0) and not (self.plan.dialect == "tunnel" and req.command == 0):
            if tid is None or tid.is_zero:
                if not self.plan.proxy_enabled:
                    return self._reply(sock, peer, Status.FORBIDDEN,
                                       "plain relay proxying is disabled (no tunnel ID)")
                return await self._proxy(sock, peer, req, network)
            return await self._connect(sock, peer, req, tid, network, wire_dialect)
        return self._reply(sock, peer, Status.BAD_REQUEST, f"unsupported command {req.cmd:#04x}")

    async def _bind(self, sock: socket.socket, peer: str, req: RelayRequest, tid: TunnelId,
                    network: str, wire_dialect: str) -> None:
        cid = TunnelId(uuid.uuid4().bytes, FLAG_UDP if network == "udp" else 0, tid.weight)
        addrs = req.addrs
        port = addrs[-1].port if addrs else 0
        host = addrs[-1].host if addrs else ""
        if not host or host in ("0.0.0.0", "::"):
            host = endpoint_name(tid)
        reply = RelayResponse(Status.OK, (
            AddrFeature(Address.from_hostport(f"{host}:{port}")),
            TunnelFeature(cid, 16 if wire_dialect == "relay" else 20),
        ))
        loop = asyncio.get_running_loop()
        await loop.sock_sendall(sock, reply.encode())
        session = SmuxSession(smux_config(self.plan, wire_dialect), client=True,
                              now=loop.time())
        conn_holder: list[LocalConnector] = []

        def closed(_mux: MuxConnection, reason: str) -> None:
            if conn_holder:
                self.pool.remove(conn_holder[0], reason)

        mux = MuxConnection(session, on_closed=closed, name=f"tunnel {tid.text}")
        await loop.connect_accepted_socket(lambda: mux, sock)
        if mux.closed:
            return
        conn = LocalConnector(tid, cid, network, tid.weight, wire_dialect, peer, mux)
        conn_holder.append(conn)
        self.pool.add(conn)

    async def _connect(self, sock: socket.socket, peer: str, req: RelayRequest, tid: TunnelId,
                       network: str, wire_dialect: str) -> None:
        addrs = req.addrs
        # Two Addr features: source then destination (tunnel dialect). One: the target (relay
        # dialect); gost's tunnel handler would take a lone Addr as the source and fail the
        # route, Burrow accepts both conventions (tunnel-mode.md vectors x1).
        target = addrs[1] if len(addrs) >= 2 else (addrs[-1] if addrs else None)
        host = target.host if target is not None else ""
        if not self.plan.direct:
            route = self.ingress.lookup(host) if host else None
            if route is None or route.tunnel_id != tid:
                return self._reply(sock, peer, Status.HOST_UNREACHABLE,
                                   f"host {host!r} is not routed to tunnel {tid.text}")
        d = Delivery(kind="visitor", service=self.plan.name, tunnel_id=tid, network=network,
                     dialect=self.plan.dialect, peer=peer,
                     target=target.hostport() if target is not None else "", reply=Status.OK)
        if not await self.router.deliver(d, sock, b""):
            return self._reply(sock, peer, Status.SERVICE_UNAVAILABLE,
                               f"tunnel {tid.text} has no {network} connector")

    async def _proxy(self, sock: socket.socket, peer: str, req: RelayRequest, network: str) -> None:
        """Plain relay CONNECT (``relay.proxy`` on): dial the Addr target and splice."""
        addrs = req.addrs
        target = addrs[-1] if addrs else None
        if network != "tcp" or target is None or not target.host:
            return self._reply(sock, peer, Status.BAD_REQUEST, "proxy needs a TCP target")
        loop = asyncio.get_running_loop()
        down, up = SpliceLeg("visitor"), SpliceLeg("target")
        down.peer, up.peer = up, down
        try:
            async with asyncio.timeout(PROXY_CONNECT_TIMEOUT):
                await loop.create_connection(lambda: up, target.host, target.port)
        except (OSError, TimeoutError) as exc:
            return self._reply(sock, peer, Status.NETWORK_UNREACHABLE,
                               f"cannot reach {target.hostport()}: {exc}")
        await loop.sock_sendall(sock, RelayResponse(Status.OK).encode())
        await loop.connect_accepted_socket(lambda: down, sock)
        event(log, logging.DEBUG, "relay.proxy", peer=peer, target=target.hostport())
