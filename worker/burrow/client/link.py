"""The tunnel client's connection to its server while the BIND is answered, on any transport.

Plain TCP keeps the raw-socket handshake of dial.py (the socket then becomes the mux's
transport). tls, ws and wss dial through burrow.net.layered and read the reply with a small
protocol; the transport is then given to the mux with ``set_protocol``. Either way the bytes the
server sent right behind its reply reach the mux first.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

from burrow.config.plan_types import ServerNode
from burrow.net.layered import dial
from burrow.proto.addr import join_hostport
from burrow.proto.relay import RelayReader, RelayResponse

from .dial import dial_host, open_connected_socket, read_response, sockname_text


class ServerLink:
    """A connected server: send the BIND, read the reply, then hand the connection on."""

    async def handshake(
        self, build: Callable[[str], bytes], timeout: float
    ) -> tuple[RelayResponse, bytes]:
        """Send ``build(local address)``; the reply and the bytes read past it."""
        raise NotImplementedError

    async def attach(self, protocol: asyncio.Protocol) -> None:
        """Give the connection to ``protocol`` (which gets connection_made)."""
        raise NotImplementedError

    def close(self) -> None:
        """Drop the connection (before attach)."""
        raise NotImplementedError


class _SocketLink(ServerLink):
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    async def handshake(
        self, build: Callable[[str], bytes], timeout: float
    ) -> tuple[RelayResponse, bytes]:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout):
            await loop.sock_sendall(self.sock, build(sockname_text(self.sock)))
        return await read_response(self.sock, timeout)

    async def attach(self, protocol: asyncio.Protocol) -> None:
        await asyncio.get_running_loop().create_connection(lambda: protocol, sock=self.sock)

    def close(self) -> None:
        self.sock.close()


class _Reply(asyncio.Protocol):
    """Reads one relay response, then holds what follows until the mux takes over."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.reader = RelayReader("response")
        self.done: asyncio.Future[tuple[RelayResponse, bytes]] = (
            asyncio.get_running_loop().create_future()
        )
        self.extra = bytearray()
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.done.done():
            self.extra += data
            return
        self.reader.receive_data(data)
        try:
            msg = self.reader.next_event()
        except Exception as exc:  # noqa: BLE001 - a malformed reply ends this attempt
            self.done.set_exception(exc)
            return
        if isinstance(msg, RelayResponse):
            assert self.transport is not None
            self.transport.pause_reading()
            self.done.set_result((msg, self.reader.trailing()))

    def eof_received(self) -> bool | None:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if not self.done.done():
            self.done.set_exception(ConnectionError("server closed the connection before replying"))


class _LayeredLink(ServerLink):
    def __init__(self, transport: asyncio.Transport, reply: _Reply) -> None:
        self.transport = transport
        self.reply = reply

    async def handshake(
        self, build: Callable[[str], bytes], timeout: float
    ) -> tuple[RelayResponse, bytes]:
        name = self.transport.get_extra_info("sockname")
        local = join_hostport(str(name[0]), int(name[1])) if isinstance(name, tuple) else ""
        self.transport.write(build(local))
        async with asyncio.timeout(timeout):
            return await self.reply.done

    async def attach(self, protocol: asyncio.Protocol) -> None:
        t, reply = self.transport, self.reply
        t.set_protocol(protocol)
        protocol.connection_made(t)
        if reply.extra:
            protocol.data_received(bytes(reply.extra))
        if reply.lost:
            protocol.connection_lost(None)
            return
        t.resume_reading()

    def close(self) -> None:
        self.transport.abort()


async def connect_server(node: ServerNode, timeout: float) -> ServerLink:
    """Connect to the tunnel server over the node's transport; OSError/TimeoutError."""
    if node.transport.kind == "tcp":
        return _SocketLink(await open_connected_socket(node, timeout))
    async with asyncio.timeout(timeout):
        t, reply = await dial(node.transport, dial_host(node.addr.host), node.addr.port, _Reply)
    return _LayeredLink(t, reply)
