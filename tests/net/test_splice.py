"""SpliceLeg over real loopback sockets on uvloop: what one leg reads before the other connects.

The visitor dials the server and joins the visitor's own connection to it a loop turn later;
the relay proxy dials the target the same way. uvloop starts reading *after* connection_made
returns, so the leg's pause_reading() there is ignored and the peer's first bytes can be read
while the other leg has no transport. They used to be dropped: a 30 MB download through a
loaded visitor arrived one 64 KiB chunk short, with a clean EOF.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest
from helpers.mux import run_uvloop as run

from burrow.net.splice import SpliceLeg
from burrow.proto.relay import RelayReader, RelayResponse, Status

WAIT = 10.0
CHUNK = b"x" * (64 * 1024)


class Marker(asyncio.Protocol):
    """Sets ``seen`` on its first byte: the loop has polled every socket readable before it."""

    def __init__(self) -> None:
        self.seen = asyncio.get_running_loop().create_future()
        self.transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if not self.seen.done():
            self.seen.set_result(None)


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A plain listening socket; each dial's far end is accepted from it."""
    with socket.create_server(("127.0.0.1", 0)) as sock:
        sock.settimeout(WAIT)
        yield sock


async def dial(listener: socket.socket, protocol: asyncio.Protocol) -> socket.socket:
    """Connect ``protocol`` (uvloop transport) to ``listener``; returns the accepted far end."""
    host, port = listener.getsockname()[:2]
    await asyncio.get_running_loop().create_connection(lambda: protocol, host, port)
    far, _ = listener.accept()  # already in the backlog: connect() has completed
    far.settimeout(WAIT)
    return far


def read_all(sock: socket.socket) -> bytes:
    """Everything ``sock`` receives until EOF (blocking, in a thread)."""
    out = bytearray()
    while data := sock.recv(1 << 20):
        out += data
    return bytes(out)


def test_bytes_read_before_the_peer_leg_connects_are_kept(listener: socket.socket) -> None:
    """The server's reply and first chunk are read before the visitor leg is joined: the
    visitor still gets every byte, in order."""
    reply = RelayResponse(Status.OK).encode()

    async def main() -> None:
        server_leg = SpliceLeg("server", RelayReader("response"))
        visitor_leg = SpliceLeg("visitor")
        server_leg.peer, visitor_leg.peer = visitor_leg, server_leg
        with await dial(listener, server_leg) as server_far:
            server_far.sendall(reply + CHUNK)
            # Sent after the chunk: when the marker's byte is delivered, the loop has polled
            # the server leg's socket too (one poll reports both; libuv reads each that turn).
            marker = Marker()
            with await dial(listener, marker) as marker_far:
                marker_far.sendall(b"!")
                async with asyncio.timeout(WAIT):
                    await marker.seen
            with await dial(listener, visitor_leg) as visitor_far:
                server_far.sendall(CHUNK[:100])
                server_far.close()  # the download ends: both legs close, the visitor sees EOF
                async with asyncio.timeout(WAIT):
                    got = await asyncio.to_thread(read_all, visitor_far)
        assert marker.transport is not None
        marker.transport.close()
        assert len(got) == len(CHUNK) + 100
        assert got == CHUNK + CHUNK[:100]

    run(main)


def test_a_leg_whose_peer_left_keeps_nothing(listener: socket.socket) -> None:
    """Bytes read after the other leg's connection ended are not queued for it."""

    async def main() -> None:
        server_leg, visitor_leg = SpliceLeg("server"), SpliceLeg("visitor")
        server_leg.peer, visitor_leg.peer = visitor_leg, server_leg
        with (
            await dial(listener, server_leg) as server_far,
            await dial(listener, visitor_leg) as visitor_far,
        ):
            visitor_far.close()  # the visitor leaves first: both legs close
            async with asyncio.timeout(WAIT):
                assert await asyncio.to_thread(read_all, server_far) == b""
        server_leg.data_received(CHUNK)  # a read that was already on its way
        assert visitor_leg.pending == []

    run(main)
