"""MuxConnection and StreamPipe over real loopback sockets, on uvloop.

Two MuxConnections face each other over one TCP connection: the "opener" plays the tunnel
server (smux client, opens streams), the "acceptor" plays the tunnel client (smux server).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import sys
from collections.abc import Awaitable
from typing import cast

import pytest
from helpers.mux import Collector, mux_pair
from helpers.mux import run_uvloop as run

from burrow.net.mux import MuxConnection, MuxStream
from burrow.net.pipe import StreamPipe
from burrow.proto.smux import SmuxConfig, SmuxSession
from burrow.proto.smux_stream import INITIAL_PEER_WINDOW

WAIT = 10.0


def open_collected(mux: MuxConnection) -> tuple[MuxStream, Collector]:
    col = Collector()
    st = mux.open_stream(col)
    col.stream = st
    return st, col


class Local(asyncio.Protocol):
    """A local target: echo, or a sink that reads nothing until told to."""

    def __init__(self, server: LocalServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.data = bytearray()
        self.changed = asyncio.Event()
        self.lost = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = t = cast(asyncio.Transport, transport)  # uvloop: not a subclass
        self.server.conns.append(self)
        self.server.arrived.set()
        if not self.server.echo:
            t.pause_reading()

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        if self.server.echo:
            self.transport.write(data)
        self.data += data
        self.changed.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.set()

    async def wait_len(self, n: int) -> bytes:
        async with asyncio.timeout(WAIT):
            while len(self.data) < n:
                self.changed.clear()
                await self.changed.wait()
        return bytes(self.data)


class LocalServer:
    def __init__(self, *, echo: bool = True, rcvbuf: int = 0) -> None:
        self.echo = echo
        self.rcvbuf = rcvbuf
        self.conns: list[Local] = []
        self.arrived = asyncio.Event()
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> LocalServer:
        sock = socket.socket()
        if self.rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)  # inherited
        sock.bind(("127.0.0.1", 0))
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: Local(self), sock=sock)
        self.port = sock.getsockname()[1]
        return self

    async def first(self) -> Local:
        async with asyncio.timeout(WAIT):
            await self.arrived.wait()
        return self.conns[0]

    def close(self) -> None:
        for c in self.conns:
            if c.transport is not None:
                c.transport.close()
        if self.server is not None:
            self.server.close()


def dial(pipe: StreamPipe, port: int) -> asyncio.Task[object]:
    """Connect a pipe to a local port in the background (on_stream callbacks are not async)."""
    loop = asyncio.get_running_loop()
    return loop.create_task(loop.create_connection(lambda: pipe, "127.0.0.1", port))


@pytest.mark.parametrize("version", [1, 2])
def test_pipe_keeps_stream_bytes_that_arrive_before_the_local_connection(version: int) -> None:
    async def main() -> None:
        echo = await LocalServer().start()
        accepted: list[MuxStream] = []
        pipes: list[StreamPipe] = []
        marks: list[Collector] = []
        marked = asyncio.Event()

        def on_stream(st: MuxStream) -> None:
            if not accepted:
                accepted.append(st)
                pipes.append(StreamPipe(st))  # not connected yet: it must buffer
            else:
                mark = Collector()
                st.sink, mark.stream = mark, st
                marks.append(mark)
                marked.set()

        loop = asyncio.get_running_loop()
        try:
            async with mux_pair(version, on_stream) as (opener, _, _):
                st, col = open_collected(opener)
                for chunk in (b"one,", b"two,", b"three"):
                    st.write(chunk)
                # Frames arrive in order: once a later stream's data is in, so is the first's.
                mark_st, _ = open_collected(opener)
                mark_st.write(b"mark")
                async with asyncio.timeout(WAIT):
                    await marked.wait()
                await marks[0].wait_len(4)
                assert echo.conns == []
                async with asyncio.timeout(WAIT):
                    await loop.create_connection(lambda: pipes[0], "127.0.0.1", echo.port)
                st.write(b",four")
                assert await col.wait_len(16) == b"one,two,three,four"
                local = await echo.first()
                assert bytes(local.data) == b"one,two,three,four"
        finally:
            echo.close()

    run(main)


@pytest.mark.parametrize("version", [1, 2])
def test_either_end_closing_closes_the_other(version: int) -> None:
    async def main() -> None:
        echo = await LocalServer().start()
        pending: list[Awaitable[object]] = []

        def on_stream(st: MuxStream) -> None:
            pipe = StreamPipe(st)
            pending.append(dial(pipe, echo.port))

        try:
            async with mux_pair(version, on_stream) as (opener, _, _):
                # 1: the local target closes -> FIN reaches the opener.
                st, col = open_collected(opener)
                st.write(b"x")
                await col.wait_len(1)
                local = await echo.first()
                assert local.transport is not None
                local.transport.close()
                async with asyncio.timeout(WAIT):
                    await col.ended.wait()
                # 2: the opener closes its stream -> the local connection is closed.
                st2, col2 = open_collected(opener)
                st2.write(b"y")
                await col2.wait_len(1)
                local2 = echo.conns[1]
                st2.close()
                async with asyncio.timeout(WAIT):
                    await local2.lost.wait()
                async with asyncio.timeout(WAIT):
                    await asyncio.gather(*pending)
        finally:
            echo.close()

    run(main)


def test_v2_slow_target_holds_its_stream_only() -> None:
    """smux v2: a target that reads nothing stalls its own stream; others keep flowing (§3.5)."""

    async def main() -> None:
        slow = await LocalServer(echo=False, rcvbuf=8192).start()
        echo = await LocalServer().start()
        conns: list[Awaitable[object]] = []
        targets = [slow.port, echo.port]

        def on_stream(st: MuxStream) -> None:
            pipe = StreamPipe(st)
            conns.append(dial(pipe, targets.pop(0)))

        size = 12 * 1024 * 1024  # far more than kernel buffers + pipe buffer + window
        blob = os.urandom(size)
        try:
            async with mux_pair(2, on_stream) as (opener, _, _):
                big, _ = open_collected(opener)
                big.write(blob)
                quick, col = open_collected(opener)
                for i in range(20):
                    quick.write(b"%03d" % i)
                assert await col.wait_len(60) == b"".join(b"%03d" % i for i in range(20))
                async with asyncio.timeout(WAIT):
                    await asyncio.gather(*conns)
                sink = await slow.first()
                assert len(sink.data) < size  # the target has (almost) not read yet
                assert big.pending_bytes > 0  # the rest of the blob still waits at the opener
                assert sink.transport is not None
                sink.transport.resume_reading()
                got = await sink.wait_len(size)
                assert hashlib.sha256(got).digest() == hashlib.sha256(blob).digest()
        finally:
            slow.close()
            echo.close()

    run(main)


def test_v1_big_transfer_arrives_intact_through_a_slow_target() -> None:
    async def main() -> None:
        slow = await LocalServer(echo=False, rcvbuf=8192).start()
        conns: list[Awaitable[object]] = []

        def on_stream(st: MuxStream) -> None:
            pipe = StreamPipe(st)
            conns.append(dial(pipe, slow.port))

        size = 8 * 1024 * 1024
        blob = os.urandom(size)
        try:
            async with mux_pair(1, on_stream) as (opener, _, _):
                big, _ = open_collected(opener)
                big.write(blob)
                sink = await slow.first()
                async with asyncio.timeout(WAIT):
                    await asyncio.gather(*conns)
                assert sink.transport is not None
                sink.transport.resume_reading()
                got = await sink.wait_len(size)
                assert hashlib.sha256(got).digest() == hashlib.sha256(blob).digest()
        finally:
            slow.close()

    run(main)


def test_tunnel_loss_ends_every_stream_and_reports_why() -> None:
    async def main() -> None:
        got: list[Collector] = []
        three = asyncio.Event()

        def on_stream(st: MuxStream) -> None:
            col = Collector()
            st.sink, col.stream = col, st
            got.append(col)
            if len(got) == 3:
                three.set()

        async with mux_pair(2, on_stream) as (opener, acceptor, reasons):
            for _ in range(3):
                st, _ = open_collected(opener)
                st.write(b"z")
            async with asyncio.timeout(WAIT):
                await three.wait()
            for col in got:
                await col.wait_len(1)
            opener.abort("gone")
            async with asyncio.timeout(WAIT):
                for col in got:
                    await col.ended.wait()
            assert acceptor.closed and acceptor.streams == {}
            assert len(reasons) == 1 and reasons[0].startswith("connection lost")

    run(main)


def test_stream_opened_toward_a_side_without_handler_is_closed() -> None:
    async def main() -> None:
        # The opener has no on_stream: like gost's server, it closes streams the client opens.
        async with mux_pair(2, None) as (opener, acceptor, _):
            st, col = open_collected(acceptor)
            st.write(b"hello?")
            async with asyncio.timeout(WAIT):
                await col.ended.wait()
            assert opener.streams == {} and not opener.closed

    run(main)


class Source(asyncio.Protocol):
    """A local target that sends ``blob`` as soon as it is connected, then closes."""

    def __init__(self, blob: bytes, closed: asyncio.Event) -> None:
        self.blob = blob
        self.closed = closed

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        t = cast(asyncio.Transport, transport)
        t.write(self.blob)
        t.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set()


def test_v2_local_end_after_a_shut_window_still_delivers_every_byte() -> None:
    """The local source ends while the peer's window is shut: the queued tail, then FIN."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        blob = os.urandom(INITIAL_PEER_WINDOW + 200 * 1024)  # the window plus a queued tail
        source_closed = asyncio.Event()
        server = await loop.create_server(lambda: Source(blob, source_closed), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        accepted: list[MuxStream] = []
        pipes: list[StreamPipe] = []
        dials: list[Awaitable[object]] = []

        def on_stream(st: MuxStream) -> None:
            accepted.append(st)
            pipes.append(StreamPipe(st))
            dials.append(dial(pipes[-1], port))

        try:
            async with mux_pair(2, on_stream) as (opener, acceptor, _):
                st, col = open_collected(opener)
                # The visitor reads nothing for now: the window stays shut. (It sends nothing
                # either: a source closing with unread input would reset, not finish.)
                st.hold()
                async with asyncio.timeout(WAIT):
                    await source_closed.wait()
                    await asyncio.gather(*dials)
                    while pipes[0].transport is not None:  # until the pipe sees the local end
                        await asyncio.sleep(0.01)
                far = accepted[0]
                assert not far.closed and far.pending_bytes > 0 and not col.ended.is_set()
                st.release()
                assert await col.wait_len(len(blob)) == blob
                await col.wait_ended()
                assert acceptor.streams == {}
        finally:
            server.close()

    run(main)


class CountingPipe(StreamPipe):
    """A StreamPipe that counts how it was handed stream payload."""

    def __init__(self, stream: MuxStream) -> None:
        super().__init__(stream)
        self.single = 0
        self.vectored: list[int] = []  # pieces per vectored delivery

    def stream_data(self, data: bytes | memoryview) -> None:
        self.single += 1
        super().stream_data(data)

    def stream_datav(self, parts: list[bytes | memoryview]) -> None:
        self.vectored.append(len(parts))
        super().stream_datav(parts)


@pytest.mark.parametrize("version", [1, 2])
def test_frames_of_one_stream_in_one_read_leave_in_one_vectored_write(version: int) -> None:
    """Three streams each send 2 MiB at once (64 frames in one writelines), interleaved: every
    local socket gets its own bytes in order, and a run of one stream's frames in a tunnel read
    reaches the pipe as one vectored write (fewer calls than frames), the window accounting
    still letting v2 send past its initial window."""

    async def main() -> None:
        echo = await LocalServer(echo=False).start()
        pipes: list[CountingPipe] = []
        dials: list[Awaitable[object]] = []

        def on_stream(st: MuxStream) -> None:
            pipes.append(CountingPipe(st))
            dials.append(dial(pipes[-1], echo.port))

        blobs = [os.urandom(2 << 20) for _ in range(3)]
        try:
            async with mux_pair(version, on_stream) as (opener, _, _):
                streams = [open_collected(opener)[0] for _ in blobs]
                async with asyncio.timeout(WAIT):
                    while len(dials) < len(blobs):
                        await asyncio.sleep(0.01)
                    await asyncio.gather(*dials)
                for st, blob in zip(streams, blobs, strict=True):
                    st.write(blob)
                await echo.first()
                async with asyncio.timeout(WAIT):
                    while len(echo.conns) < len(blobs):
                        await asyncio.sleep(0.01)
                for local in echo.conns:
                    assert local.transport is not None
                    local.transport.resume_reading()
                # Each local socket gets one stream's bytes: match them by content.
                got = sorted(
                    [hashlib.sha256(await c.wait_len(2 << 20)).digest() for c in echo.conns]
                )
                assert got == sorted(hashlib.sha256(b).digest() for b in blobs)
                frames = (2 << 20) // opener.session.config.max_frame_size
                for p in pipes:
                    assert p.vectored, "no run of frames was handed over as one write"
                    assert p.single + len(p.vectored) < frames
        finally:
            echo.close()

    run(main)


def test_a_stream_object_stays_at_8_slots() -> None:
    """96 B per open stream (was 112 with a held flag and a queued length of its own: both
    now live in _deferred and the queue); hold, consumption while held and release still
    behave (test_v2_slow_target_holds_its_stream_only moves 12 MiB through them)."""
    st = MuxStream(3, MuxConnection(SmuxSession(SmuxConfig(version=2), client=True, now=0.0)))
    assert sys.getsizeof(st) <= 96 and not hasattr(st, "__dict__")
    assert not st.held and st.pending_bytes == 0
    st.hold()
    st.consumed(5)
    assert st.held
    st.release()
    assert not st.held
