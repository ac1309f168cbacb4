"""smux test helpers: a uvloop runner, two MuxConnections over loopback TCP, and a StreamSink
that keeps what a stream delivers, all with bounded waits."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import uvloop

from burrow.net.mux import MuxConnection
from burrow.net.mux_stream import MuxStream
from burrow.proto.smux import SmuxConfig, SmuxSession

WAIT = 10.0


def run_uvloop(main: Callable[[], Awaitable[None]]) -> None:
    """Run the coroutine function ``main`` to completion on a fresh uvloop."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def mux_pair(
    version: int,
    on_stream: Callable[[MuxStream], None] | None,
    *,
    stream_buffer: int | None = None,
) -> AsyncIterator[tuple[MuxConnection, MuxConnection, list[str]]]:
    """(opener, acceptor, reasons the acceptor reported on close) over one loopback TCP
    connection: the opener plays the tunnel server (smux client), the acceptor the tunnel
    client, whose ``on_stream`` gets the streams the opener opens."""
    loop = asyncio.get_running_loop()
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    lsock.setblocking(False)
    if stream_buffer is None:
        stream_buffer = 65536 if version == 1 else 1048576
    cfg = SmuxConfig(version=version, max_stream_buffer=stream_buffer)
    reasons: list[str] = []
    acceptor = MuxConnection(
        SmuxSession(cfg, client=False, now=time.monotonic()),
        on_stream=on_stream,
        on_closed=lambda _, why: reasons.append(why),
    )
    opener = MuxConnection(SmuxSession(cfg, client=True, now=time.monotonic()))
    try:
        async with asyncio.timeout(WAIT):
            connecting = loop.create_task(
                loop.create_connection(lambda: opener, "127.0.0.1", lsock.getsockname()[1])
            )
            conn, _ = await loop.sock_accept(lsock)
            await loop.create_connection(lambda: acceptor, sock=conn)
            await connecting
        yield opener, acceptor, reasons
    finally:
        opener.abort("test over")
        acceptor.abort("test over")
        lsock.close()


class QuietSink:
    """A StreamSink whose flow-control and end callbacks do nothing: subclass it for tests."""

    def stream_data(self, data: bytes | memoryview) -> None:
        pass

    def stream_ended(self) -> None:
        pass

    def stream_writable(self) -> None:
        pass

    def pause_source(self) -> None:
        pass

    def resume_source(self) -> None:
        pass


class Collector(QuietSink):
    """A StreamSink that keeps what it gets and reports consumption (so v2 windows keep opening)."""

    def __init__(self) -> None:
        self.stream: MuxStream | None = None
        self.buf = bytearray()
        self.ended = asyncio.Event()
        self.changed = asyncio.Event()

    def stream_data(self, data: bytes | memoryview) -> None:
        self.buf += data
        if self.stream is not None:
            self.stream.consumed(len(data))
        self.changed.set()

    def stream_ended(self) -> None:
        self.ended.set()
        self.changed.set()

    async def wait_len(self, n: int) -> bytes:
        async with asyncio.timeout(WAIT):
            while len(self.buf) < n:
                assert not self.ended.is_set(), f"stream ended after {len(self.buf)} bytes"
                self.changed.clear()
                await self.changed.wait()
        return bytes(self.buf)

    async def wait_ended(self) -> None:
        async with asyncio.timeout(WAIT):
            await self.ended.wait()
