"""TCP visitor: a private entry point that reaches a tunnel by ID with one CONNECT per connection.

Spec: tunnel-mode.md §6.1 (visitor side), §6.2 (server replies), relay-protocol.md §6.5.

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
from typing import Final, cast

from burrow.common.logfmt import event
from burrow.config.plan import DEFAULT_SNIFF_TIMEOUT, VisitorPlan
from burrow.proto.addr import join_hostport
from burrow.proto.errors import ProtocolError
from burrow.proto.relay import RelayReader, RelayResponse, Status, status_text
from burrow.proto.sniff import MAX_SNIFF_BYTES, NEED_MORE, Sniffed, http_host_port, sniff
from burrow.routing.nodes import RoundRobin

from .dial import (
    DEFAULT_CONNECT_TIMEOUT,
    build_connect_request,
    open_connected_socket,
)

log = logging.getLogger("burrow.client.visitor")

RECV_CHUNK: Final = 65536
SEND_TIMEOUT: Final = 10.0
ACCEPT_ERROR_PAUSE: Final = 0.1  # EMFILE and friends: back off instead of spinning
WRITE_HIGH: Final = 256 * 1024
WRITE_LOW: Final = 64 * 1024


class _Leg(asyncio.Protocol):
    """One end of a visitor splice; the server end also strips the relay reply."""

    def __init__(self, name: str, reply: RelayReader | None = None) -> None:
        self.name = name
        self.peer: _Leg | None = None
        self.transport: asyncio.Transport | None = None
        self.reply = reply
        self.pending: list[bytes] = []  # bytes to write once this leg is connected
        self.target = ""
        self.service = ""
        self._waiting_peer = False
        self._paused_by_peer = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # cast, not isinstance: uvloop's transports do not subclass asyncio.Transport
        self.transport = transport = cast(asyncio.Transport, transport)
        transport.set_write_buffer_limits(high=WRITE_HIGH, low=WRITE_LOW)
        pending, self.pending = self.pending, []
        if pending:
            transport.writelines(pending)
        peer = self.peer
        if peer is None or peer.transport is None:
            # The other end is not connected yet: read nothing we could not forward.
            self._waiting_peer = True
            transport.pause_reading()
            return
        if peer._waiting_peer:
            peer._waiting_peer = False
            peer.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        reader = self.reply
        if reader is not None:
            reader.receive_data(data)
            try:
                msg = reader.next_event()
            except ProtocolError as exc:
                event(log, logging.DEBUG, "visitor.bad_reply", service=self.service,
                      target=self.target, error=str(exc))  # fmt: skip
                self.abort_both()
                return
            if not isinstance(msg, RelayResponse):
                return
            self.reply = None
            if msg.status != Status.OK:
                event(log, logging.INFO, "visitor.refused", service=self.service,
                      target=self.target, status=status_text(msg.status))  # fmt: skip
                self.close_both()
                return
            data = reader.trailing()
            if not data:
                return
        peer = self.peer
        if peer is not None and peer.transport is not None:
            peer.transport.write(data)

    def eof_received(self) -> bool | None:
        return False  # no half-close through a tunnel: close both ends

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        peer = self.peer
        if peer is not None and peer.transport is not None:
            peer.transport.close()

    def pause_writing(self) -> None:
        peer = self.peer
        if peer is not None and peer.transport is not None and not self._paused_by_peer:
            self._paused_by_peer = True
            peer.transport.pause_reading()

    def resume_writing(self) -> None:
        peer = self.peer
        if self._paused_by_peer and peer is not None and peer.transport is not None:
            self._paused_by_peer = False
            peer.transport.resume_reading()

    def close_both(self) -> None:
        """Close both ends, flushing what they have buffered."""
        for leg in (self, self.peer):
            if leg is not None and leg.transport is not None:
                leg.transport.close()

    def abort_both(self) -> None:
        """Drop both ends now."""
        for leg in (self, self.peer):
            if leg is not None and leg.transport is not None:
                leg.transport.abort()


async def _sniff_target(
    conn: socket.socket, timeout: float
) -> tuple[bytes, str | None]:
    """Read the visitor's first bytes; (bytes read, "host:port" named by HTTP Host / TLS SNI)."""
    loop = asyncio.get_running_loop()
    buf = bytearray()
    try:
        async with asyncio.timeout(timeout):
            while len(buf) < MAX_SNIFF_BYTES:
                data = await loop.sock_recv(conn, RECV_CHUNK)
                if not data:
                    raise ConnectionError("visitor closed before sending anything useful")
                buf += data
                result = sniff(buf)
                if result is NEED_MORE:
                    continue
                if isinstance(result, Sniffed) and result.host:
                    if result.protocol == "tls":
                        return bytes(buf), join_hostport(result.host, 443)
                    try:
                        host, port = http_host_port(result.host, 80)
                    except ValueError:
                        break
                    return bytes(buf), join_hostport(host, port)
                break
    except TimeoutError:
        pass
    return bytes(buf), None


async def _visit(
    plan: VisitorPlan, accepted: socket.socket, peer: str, cursor: RoundRobin
) -> None:
    loop = asyncio.get_running_loop()
    timeout = plan.server.connect_timeout or DEFAULT_CONNECT_TIMEOUT
    conn: socket.socket | None = accepted
    server: socket.socket | None = None
    server_leg: _Leg | None = None
    try:
        accepted.setblocking(False)
        accepted.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        first, target = b"", None
        if plan.sniffing:
            first, target = await _sniff_target(
                accepted, plan.sniffing_timeout or DEFAULT_SNIFF_TIMEOUT
            )
        if target is None:
            node = cursor.pick(plan.targets)
            target = node.addr if node is not None else None
        if target is None:
            event(log, logging.DEBUG, "visitor.no_target", service=plan.name, peer=peer)
            accepted.close()
            return
        server = await open_connected_socket(plan.server, timeout)
        request = build_connect_request(plan.server, plan.tunnel_id, target, udp=False, src=peer)
        async with asyncio.timeout(SEND_TIMEOUT):
            await loop.sock_sendall(server, request)
        visitor_leg = _Leg("visitor")
        server_leg = _Leg("server", RelayReader("response"))
        visitor_leg.peer, server_leg.peer = server_leg, visitor_leg
        server_leg.target = visitor_leg.target = target
        server_leg.service = visitor_leg.service = plan.name
        if first:
            server_leg.pending.append(first)
        # Once a transport owns a socket, only the transport may close it.
        await loop.create_connection(lambda: server_leg, sock=server)
        server = None
        await loop.connect_accepted_socket(lambda: visitor_leg, accepted)
        conn = None
    except (OSError, TimeoutError, ProtocolError) as exc:
        event(log, logging.DEBUG, "visitor.failed", service=plan.name, peer=peer,
              error=str(exc) or type(exc).__name__)  # fmt: skip
        _abandon(conn, server, server_leg)
        return
    except BaseException:
        _abandon(conn, server, server_leg)
        raise
    event(log, logging.DEBUG, "visitor.connected", service=plan.name, peer=peer, target=target)


def _abandon(conn: socket.socket | None, server: socket.socket | None, leg: _Leg | None) -> None:
    for s in (conn, server):
        if s is not None and s.fileno() >= 0:
            s.close()
    if leg is not None:
        leg.abort_both()


async def serve_tcp_visitor(plan: VisitorPlan, sock: socket.socket) -> None:
    """Accept loop on an inherited listening socket; cancel to stop accepting."""
    loop = asyncio.get_running_loop()
    sock.setblocking(False)
    cursor = RoundRobin()
    tasks: set[asyncio.Task[None]] = set()
    try:
        while True:
            try:
                conn, addr = await loop.sock_accept(sock)
            except OSError as exc:
                event(log, logging.WARNING, "visitor.accept_failed", service=plan.name,
                      error=str(exc))  # fmt: skip
                await asyncio.sleep(ACCEPT_ERROR_PAUSE)
                continue
            peer = join_hostport(str(addr[0]), int(addr[1])) if isinstance(addr, tuple) else ""
            task = loop.create_task(_visit(plan, conn, peer, cursor))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    finally:
        for task in list(tasks):
            task.cancel()
