"""Router: put a visitor's connection onto a tunnel, here or in the worker that holds it.

A local connector gets a new smux stream: the per-stream header (tunnel-mode.md §4), then any
bytes already read from the visitor, then the two are piped. A connector held by another worker
gets the visitor's socket itself, with those bytes and the routing decision, over the handoff
inbox; that worker does the same steps. A connection moves at most once.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass

from burrow.common.ids import TunnelId
from burrow.common.logfmt import event
from burrow.ipc.messages import ConnectorInfo, HandoffHeader
from burrow.net.pipe import StreamPipe
from burrow.proto.addr import Address, split_hostport
from burrow.proto.errors import ProtocolError
from burrow.proto.relay import RelayResponse, Status
from burrow.proto.stream_header import StreamHeader
from burrow.worker.handoff import HandoffOutbox
from burrow.worker.pool import LocalConnector, TunnelPool

log = logging.getLogger("burrow.router")

ATTEMPTS = 3  # gost tries the pool three times (tunnel-mode.md §7)
NO_REPLY = -1


@dataclass(frozen=True, slots=True)
class Delivery:
    """Where a visitor connection goes and what it carries."""

    kind: str  # "entrypoint" | "visitor"
    service: str
    tunnel_id: TunnelId
    network: str
    dialect: str
    peer: str  # visitor "ip:port" ("" when unknown)
    target: str  # Addr #2 "host:port" ("" for none)
    reply: int  # relay status to send before piping, NO_REPLY for entry points


def _src_address(peer: str) -> Address:
    host, port = split_hostport(peer) if peer else ("", 0)
    try:
        return Address.of(host, port)
    except ProtocolError:
        return Address.of("", 0)


def stream_header(d: Delivery, dialect: str) -> bytes:
    """The header a tunnel client reads first on every stream."""
    dst = None
    if d.target:
        # rc-era relay servers always send the visitor target domain-typed (relay-protocol.md §6.2)
        dst = Address.from_hostport(d.target, force_domain=(dialect == "relay" and d.kind == "visitor"))
    src = _src_address(d.peer)
    if src.atyp == 3 and src.host:
        src = Address.of("", 0)
    return StreamHeader(src=src, dst=dst).encode()


class Router:
    """Opens streams on local connectors and hands sockets to the owners of remote ones."""

    def __init__(self, pool: TunnelPool, outbox: HandoffOutbox | None) -> None:
        self.pool = pool
        self.outbox = outbox

    async def deliver(self, d: Delivery, sock: socket.socket, prefix: bytes) -> bool:
        """Route ``sock``; True when it now belongs to a stream or another worker."""
        tried: set[str] = set()
        for _ in range(ATTEMPTS):
            choice = self.pool.pick(d.tunnel_id, d.network, d.dialect, exclude=tried)
            if choice is None:
                return False
            if isinstance(choice, LocalConnector):
                tried.add(choice.connector_id.text)
                if await self.attach(choice, d, sock, prefix):
                    return True
                continue
            tried.add(choice.connector_id)
            if await self._handoff(choice, d, sock, prefix):
                return True
        return False

    async def _handoff(self, info: ConnectorInfo, d: Delivery, sock: socket.socket,
                       prefix: bytes) -> bool:
        if self.outbox is None or info.worker not in self.outbox.peers:
            return False
        header = HandoffHeader(
            kind=d.kind, service=d.service, tunnel_id=d.tunnel_id.text,
            connector_id=info.connector_id, network=d.network, peer=d.peer, target=d.target,
            reply=d.reply, hops=1)
        try:
            await self.outbox.send(info.worker, header, prefix, sock)
        except (OSError, TimeoutError, ProtocolError) as exc:
            event(log, logging.WARNING, "handoff.failed", worker=info.worker, error=str(exc))
            return False
        return True

    async def attach(self, conn: LocalConnector, d: Delivery, sock: socket.socket,
                     prefix: bytes) -> bool:
        """Open a stream on ``conn`` and pipe ``sock`` through it; False if the tunnel is gone."""
        try:
            stream = conn.mux.open_stream()
        except (ConnectionError, ProtocolError):
            return False
        pipe = StreamPipe(stream)
        stream.write(stream_header(d, conn.dialect))
        if prefix:
            stream.write(prefix)
        if d.reply != NO_REPLY:
            try:
                sock.send(RelayResponse(d.reply).encode())
            except OSError:
                stream.close()
                sock.close()
                return True
        loop = asyncio.get_running_loop()
        try:
            await loop.connect_accepted_socket(lambda: pipe, sock)
        except OSError:
            stream.close()
            sock.close()
            return True
        event(log, logging.DEBUG, "stream.open", kind=d.kind, tunnel=d.tunnel_id.text,
              connector=conn.connector_id.text, peer=d.peer, target=d.target)
        return True

    def adopt(self, header: HandoffHeader, prefix: bytes, sock: socket.socket) -> None:
        """A socket handed over by another worker: attach it to the named local connector."""
        asyncio.get_running_loop().create_task(self._adopt(header, prefix, sock),
                                               name=f"adopt-{header.connector_id}")

    async def _adopt(self, header: HandoffHeader, prefix: bytes, sock: socket.socket) -> None:
        sock.setblocking(False)
        d = Delivery(kind=header.kind, service=header.service,
                     tunnel_id=TunnelId.parse(header.tunnel_id), network=header.network,
                     dialect="", peer=header.peer, target=header.target, reply=header.reply)
        conn = self.pool.find_local(header.connector_id)
        if conn is None:
            # The owner changed hands meanwhile: use any local connector of the tunnel, never
            # bounce again.
            for c in self.pool.local.get(d.tunnel_id, ()):
                if c.usable and c.network == d.network:
                    conn = c
                    break
        if conn is not None and await self.attach(conn, d, sock, prefix):
            return
        event(log, logging.INFO, "handoff.orphan", tunnel=header.tunnel_id,
              connector=header.connector_id)
        refuse(sock, header.kind, prefix, Status.SERVICE_UNAVAILABLE)


HTTP_STATUS = {
    502: b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    503: b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
}


def refuse(sock: socket.socket, kind: str, prefix: bytes, status: Status) -> None:
    """Tell the visitor no (relay status, or HTTP 502/503 when it spoke HTTP) and close."""
    try:
        if kind == "visitor":
            sock.send(RelayResponse(status).encode())
        elif looks_like_http(prefix):
            sock.send(HTTP_STATUS[503 if status == Status.SERVICE_UNAVAILABLE else 502])
    except OSError:
        pass
    sock.close()


def looks_like_http(data: bytes) -> bool:
    """True when the bytes start like an HTTP/1 request (for choosing an HTTP error reply)."""
    return bool(data) and data[:1] != b"\x16" and b" " in data[:40]
