"""FailoverPipe's per-stream state: kept until the first byte back, dropped at the commit.

Real loopback sockets on uvloop: a MuxConnection pair plays the tunnel (server side opens the
stream), a TCP connection plays the visitor. The moves themselves (replay on another connector,
handoff to another worker) are covered end to end by tests/e2e/test_failover*.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
import types
from collections.abc import AsyncIterator

from helpers.mux import QuietSink, mux_pair
from helpers.mux import run_uvloop as run

from burrow.common.ids import TunnelId
from burrow.net.idlewatch import IdleWatch
from burrow.net.mux import MuxStream
from burrow.routing.health import FailoverConfig
from burrow.server.failover import Failover, FailoverPipe
from burrow.server.pool import LocalConnector, TunnelPool
from burrow.server.router import NO_REPLY, Delivery

WAIT = 5.0
TID = TunnelId.parse("4d21094e-b74c-4916-86c1-d9fa36ea677b")
CID = TunnelId.parse("0b5f8129-0da3-4c39-90d7-3ab21e018cf9")


class Client(QuietSink):
    """The tunnel client's end: records stream payload, can reply on a stream."""

    def __init__(self) -> None:
        self.streams: list[MuxStream] = []
        self.data = bytearray()
        self.changed = asyncio.Event()

    def on_stream(self, st: MuxStream) -> None:
        st.sink = self  # type: ignore[assignment]
        self.streams.append(st)

    def stream_data(self, data: bytes | memoryview) -> None:
        self.data += data
        self.changed.set()

    async def wait_for(self, needle: bytes) -> None:
        async with asyncio.timeout(WAIT):
            while needle not in self.data:
                self.changed.clear()
                await self.changed.wait()


@contextlib.asynccontextmanager
async def setup(
    cfg: FailoverConfig,
) -> AsyncIterator[tuple[Failover, LocalConnector, Client, socket.socket]]:
    """(failover, connector, tunnel client end, listening visitor-side socket)."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(4)
    lsock.setblocking(False)
    client = Client()
    try:
        async with mux_pair(2, client.on_stream) as (opener, _, _):
            local = LocalConnector(TID, CID, "tcp", 1, "relay", "127.0.0.2:1", opener)
            fo = Failover(cfg, TunnelPool(0, None), IdleWatch(0))
            yield fo, local, client, lsock
    finally:
        lsock.close()


async def visitor(fo: Failover, local: LocalConnector, lsock: socket.socket, prefix: bytes
                  ) -> tuple[FailoverPipe, socket.socket]:  # fmt: skip
    """A visitor connection piped to a new stream on ``local``, ``prefix`` already read."""
    loop = asyncio.get_running_loop()
    d = Delivery("visitor", "svc", TID, "tcp", "relay", "127.0.0.3:5", "", NO_REPLY)
    stream = local.mux.open_stream(payload=b"H" + prefix)
    pipe = fo.pipe(stream, local, d, prefix)
    outside = socket.socket()
    outside.setblocking(False)
    async with asyncio.timeout(WAIT):
        connecting = loop.create_task(loop.sock_connect(outside, lsock.getsockname()))
        inside, _ = await loop.sock_accept(lsock)
        await connecting
        await loop.create_connection(lambda: pipe, sock=inside)
    return pipe, outside


async def recv_exactly(sock: socket.socket, n: int) -> bytes:
    loop = asyncio.get_running_loop()
    out = b""
    async with asyncio.timeout(WAIT):
        while len(out) < n:
            chunk = await loop.sock_recv(sock, n - len(out))
            assert chunk
            out += chunk
    return out


def test_state_is_kept_until_the_first_byte_back_then_dropped() -> None:
    async def main() -> None:
        async with setup(FailoverConfig()) as (fo, local, client, lsock):
            loop = asyncio.get_running_loop()
            pipe, outside = await visitor(fo, local, lsock, b"GET ")
            try:
                assert pipe.watching  # may still be moved: replay bytes and timer are kept
                await loop.sock_sendall(outside, b"/ HTTP/1.1\r\n\r\n")
                await client.wait_for(b"\r\n\r\n")
                assert pipe.watching
                assert client.data == b"HGET / HTTP/1.1\r\n\r\n"
                client.streams[0].write(b"HTTP/1.1 200 OK\r\n")
                assert await recv_exactly(outside, 17) == b"HTTP/1.1 200 OK\r\n"
                assert not pipe.watching  # committed: nothing per stream is left to move it
                # ... and the committed pipe still carries both ways.
                await loop.sock_sendall(outside, b"more")
                await client.wait_for(b"more")
                client.streams[0].write(b"back")
                assert await recv_exactly(outside, 4) == b"back"
            finally:
                outside.close()

    run(main)


def test_nothing_is_watched_when_there_is_nothing_to_replay_or_time() -> None:
    async def main() -> None:
        # Failover timers off (both timeouts 0) and a prefix larger than the replay limit.
        cfg = FailoverConfig(ack_timeout=0, silent_timeout=0, replay=4)
        async with setup(cfg) as (fo, local, client, lsock):
            pipe, outside = await visitor(fo, local, lsock, b"too long")
            try:
                assert not pipe.watching
                client.streams[0].write(b"ok")
                assert await recv_exactly(outside, 2) == b"ok"
            finally:
                outside.close()

    run(main)


def test_overflowing_the_replay_without_a_timer_drops_the_watch() -> None:
    async def main() -> None:
        cfg = FailoverConfig(ack_timeout=0, silent_timeout=0, replay=8)
        async with setup(cfg) as (fo, local, client, lsock):
            loop = asyncio.get_running_loop()
            pipe, outside = await visitor(fo, local, lsock, b"ab")
            try:
                assert pipe.watching  # 2 bytes may still be replayed
                await loop.sock_sendall(outside, b"0123456789")
                await client.wait_for(b"9")
                assert not pipe.watching  # past the limit and no timer: nothing left to do
            finally:
                outside.close()

    run(main)


def test_the_visitor_transport_keeps_no_bound_method_of_the_pipe() -> None:
    """uvloop keeps ``protocol.data_received``: that is the pipe itself, not a 64 B bound
    method per open stream, and the visitor's bytes still go through FailoverPipe's own
    handling (the replay copy) and IdlePipe's (the activity stamp) to the stream."""

    async def main() -> None:
        async with setup(FailoverConfig()) as (fo, local, client, lsock):
            loop = asyncio.get_running_loop()
            pipe, outside = await visitor(fo, local, lsock, b"GET ")
            try:
                assert pipe.data_received is pipe
                gc.collect()
                bound = [
                    r.__name__ for r in gc.get_referrers(pipe) if isinstance(r, types.MethodType)
                ]
                assert bound == ["_check"]  # the failover timer's, until the first byte back
                fo.idle.now, pipe.last = 7.0, 0.0
                await loop.sock_sendall(outside, b"/ HTTP/1.1\r\n\r\n")
                await client.wait_for(b"\r\n\r\n")
                assert client.data == b"HGET / HTTP/1.1\r\n\r\n"
                assert pipe.last == 7.0 and pipe.watching
                w = pipe._w
                assert w is not None and w.replay == b"GET / HTTP/1.1\r\n\r\n"
            finally:
                outside.close()

    run(main)
