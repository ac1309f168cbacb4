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
from typing import Final

from burrow.common.logfmt import event
from burrow.config.plan import DEFAULT_SNIFF_TIMEOUT, VisitorPlan
from burrow.net.splice import SpliceLeg
from burrow.proto.addr import join_hostport
from burrow.proto.errors import ProtocolError
from burrow.proto.relay import RelayReader
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
    server_leg: SpliceLeg | None = None
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
        visitor_leg = SpliceLeg("visitor")
        server_leg = SpliceLeg("server", RelayReader("response"))
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


def _abandon(conn: socket.socket | None, server: socket.socket | None, leg: SpliceLeg | None) -> None:
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
