"""Handshake / Inbound (accepting without a task per connection) and TaskSet, on uvloop.

Real loopback sockets; every wait is bounded by asyncio.timeout.
"""

from __future__ import annotations

import asyncio
import gc
import os
import socket
import weakref
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import uvloop

from burrow.net.tasks import DEADLINE, TaskSet, deadline_missed
from burrow.server.inbound import Handshake, Inbound, serve_handshakes

WAIT = 5.0


def run(coro: Callable[[], Coroutine[Any, Any, None]]) -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(coro())


class LineHandshake(Handshake):
    """Decides on the first full line; records what happened."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        timeout: float,
        decided: asyncio.Queue[tuple[str, Inbound | None, bytes]],
    ) -> None:
        super().__init__(loop, timeout)
        self.decided = decided

    def inspect(self) -> None:
        if b"boom" in self.buf:
            raise RuntimeError("inspect failed")
        if b"\n" in self.buf:
            line, _, rest = bytes(self.buf).partition(b"\n")
            self.decided.put_nowait((line.decode(), self.finish(), rest))

    def give_up(self, why: str) -> None:
        self.decided.put_nowait((f"gave up: {why}", None, bytes(self.buf)))
        self._drop()


async def _server(
    timeout: float,
) -> tuple[int, asyncio.Queue[tuple[str, Inbound | None, bytes]], asyncio.Task[None]]:
    loop = asyncio.get_running_loop()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    decided: asyncio.Queue[tuple[str, Inbound | None, bytes]] = asyncio.Queue()
    task = loop.create_task(
        serve_handshakes(listener, lambda lp: LineHandshake(lp, timeout, decided))
    )
    return port, decided, task


async def _connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    async with asyncio.timeout(WAIT):
        return await asyncio.open_connection("127.0.0.1", port)


async def _decided(
    decided: asyncio.Queue[tuple[str, Inbound | None, bytes]],
) -> tuple[str, Inbound | None, bytes]:
    async with asyncio.timeout(WAIT):
        return await decided.get()


async def _send_line(
    payload: bytes,
) -> tuple[
    asyncio.StreamReader,
    asyncio.StreamWriter,
    tuple[str, Inbound | None, bytes],
    asyncio.Task[None],
]:
    """A fresh server, one client that sends ``payload``, and what the handshake decided."""
    port, decided, task = await _server(timeout=5.0)
    r, w = await _connect(port)
    w.write(payload)
    return r, w, await _decided(decided), task


def test_detach_keeps_the_connection_and_unread_bytes() -> None:
    async def main() -> None:
        r, w, (line, inbound, rest), task = await _send_line(b"hello\nearly")
        assert line == "hello" and rest == b"early" and inbound is not None
        assert inbound.peer.startswith("127.0.0.1:")
        sock = inbound.detach()
        w.write(b"later")  # sent after the transport stopped reading: must reach the socket
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(WAIT):
            got = b""
            while len(got) < 5:
                got += await loop.sock_recv(sock, 64)
            assert got == b"later"
            await loop.sock_sendall(sock, b"reply")
            assert await r.readexactly(5) == b"reply"
        sock.close()
        async with asyncio.timeout(WAIT):
            assert await r.read() == b""
        w.close()
        task.cancel()

    run(main)


def test_adopt_gives_the_transport_to_a_new_protocol() -> None:
    class Echo(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.t = transport

        def data_received(self, data: bytes) -> None:
            self.t.write(data.upper())  # type: ignore[attr-defined]

    async def main() -> None:
        r, w, (_, inbound, _), task = await _send_line(b"go\n")
        assert inbound is not None and inbound.adopt(Echo())
        w.write(b"abc")
        async with asyncio.timeout(WAIT):
            assert await r.readexactly(3) == b"ABC"
        w.close()
        task.cancel()

    run(main)


def test_adopt_lets_the_handshake_go() -> None:
    """After adopt nothing of the handshake (buffer, sniffer state) lives on with the
    connection: uvloop keeps a buffered protocol's methods past set_protocol otherwise."""

    class Echo(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.t = transport

        def data_received(self, data: bytes) -> None:
            self.t.write(data.upper())  # type: ignore[attr-defined]

    async def main() -> None:
        loop = asyncio.get_running_loop()
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        decided: asyncio.Queue[tuple[str, Inbound | None, bytes]] = asyncio.Queue()
        made: list[weakref.ref[LineHandshake]] = []

        def factory(lp: asyncio.AbstractEventLoop) -> LineHandshake:
            h = LineHandshake(lp, 5.0, decided)
            made.append(weakref.ref(h))
            return h

        task = loop.create_task(serve_handshakes(listener, factory))
        r, w = await _connect(listener.getsockname()[1])
        try:
            w.write(b"go\n")
            _, inbound, _ = await _decided(decided)
            assert inbound is not None and inbound.adopt(Echo())
            del inbound
            gc.collect()
            assert len(made) == 1 and made[0]() is None
            w.write(b"still")  # and the connection keeps working through the new protocol
            async with asyncio.timeout(WAIT):
                assert await r.readexactly(5) == b"STILL"
        finally:
            w.close()
            task.cancel()

    run(main)


def test_adopt_keeps_a_pause_made_by_the_new_protocol() -> None:
    """A pipe onto a write-paused tunnel pauses reading in connection_made: adopt keeps that."""

    class Paused(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            transport.pause_reading()  # type: ignore[attr-defined]

    async def main() -> None:
        _, w, (_, inbound, _), task = await _send_line(b"go\n")
        assert inbound is not None and inbound.transport is not None
        t = inbound.transport
        try:
            assert inbound.adopt(Paused())
            assert not t.is_reading()
        finally:
            t.close()
            w.close()
            task.cancel()

    run(main)


def test_timeout_eof_and_a_failing_inspect_only_end_their_connection() -> None:
    async def main() -> None:
        port, decided, task = await _server(timeout=0.2)
        _, w_silent = await _connect(port)
        what, _, _ = await _decided(decided)
        assert what == "gave up: timeout"

        _, w_eof = await _connect(port)
        w_eof.write(b"partial")
        w_eof.write_eof()
        async with asyncio.timeout(WAIT):
            what, _, buf = await decided.get()
            assert (what, buf) == ("gave up: peer closed", b"partial")

        r_boom, w_boom = await _connect(port)
        w_boom.write(b"boom")
        async with asyncio.timeout(WAIT):
            assert await r_boom.read() == b""  # closed, nothing decided

        r_ok, w_ok = await _connect(port)  # the server still accepts
        w_ok.write(b"fine\n")
        what, inbound, _ = await _decided(decided)
        assert what == "fine" and inbound is not None
        inbound.send(b"bye")
        inbound.close()
        async with asyncio.timeout(WAIT):
            assert await r_ok.read() == b"bye"
        assert decided.empty()
        for w in (w_silent, w_eof, w_boom, w_ok):
            w.close()
        task.cancel()

    run(main)


def test_taskset_deadline_and_cancel_all() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        tasks = TaskSet()
        seen: list[str] = []

        async def wait_forever(tag: str) -> None:
            try:
                await asyncio.Future()
            except asyncio.CancelledError as exc:
                seen.append(f"{tag}:{'deadline' if deadline_missed(exc) else 'cancelled'}")
                raise

        async def quick() -> None:
            seen.append("quick")

        late = tasks.spawn(loop, wait_forever("late"), deadline=0.05)
        other = tasks.spawn(loop, wait_forever("other"))
        done = tasks.spawn(loop, quick(), deadline=10.0)
        async with asyncio.timeout(WAIT):
            await asyncio.wait([late, done])
        assert late.cancelled() and "late:deadline" in seen and "quick" in seen
        assert len(tasks) == 1  # finished tasks are forgotten, the timer of `done` is gone
        tasks.cancel_all()
        async with asyncio.timeout(WAIT):
            await asyncio.wait([other])
        assert "other:cancelled" in seen and len(tasks) == 0
        assert DEADLINE == "deadline"

    run(main)


async def _accepted_pair() -> tuple[socket.socket, socket.socket]:
    """(outside end, accepted end) of one loopback TCP connection, both non-blocking."""
    loop = asyncio.get_running_loop()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.setblocking(False)
        outside = socket.socket()
        outside.setblocking(False)
        async with asyncio.timeout(WAIT):
            connecting = loop.create_task(loop.sock_connect(outside, listener.getsockname()))
            inside, _ = await loop.sock_accept(listener)
            await connecting
    inside.setblocking(False)
    return outside, inside


def test_join_of_a_handed_over_socket_keeps_no_socket_object() -> None:
    """A handed-over socket's transport owns its descriptor: the socket object is not kept
    (uvloop would keep it for the transport's life, 88 B per stream), the connection carries
    bytes both ways, and closing the transport closes the descriptor."""

    class Echo(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.t = transport
            self.lost = asyncio.get_running_loop().create_future()

        def data_received(self, data: bytes) -> None:
            self.t.write(data.upper())  # type: ignore[attr-defined]

        def connection_lost(self, exc: Exception | None) -> None:
            self.lost.set_result(None)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        outside, inside = await _accepted_pair()
        fd, gone = inside.fileno(), weakref.ref(inside)
        inbound, echo = Inbound(sock=inside), Echo()
        del inside
        try:
            async with asyncio.timeout(WAIT):
                assert await inbound.join(echo)
            assert inbound.sock is None
            gc.collect()
            assert gone() is None
            async with asyncio.timeout(WAIT):
                await loop.sock_sendall(outside, b"abc")
                assert await loop.sock_recv(outside, 16) == b"ABC"
            echo.t.close()
            async with asyncio.timeout(WAIT):
                await echo.lost
                assert await loop.sock_recv(outside, 16) == b""  # the peer sees the close
            with pytest.raises(OSError):
                os.fstat(fd)  # closed (listing /proc/self/fd would open that very number)
        finally:
            outside.close()

    run(main)


# uvloop leaves the transport it could not open to the GC, which warns about it.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_join_that_uvloop_refuses_closes_the_socket() -> None:
    """A descriptor uvloop cannot open (here: already watched by the loop) stays ours and
    is closed, and join says False."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        outside, inside = await _accepted_pair()
        fd = inside.fileno()
        loop.add_reader(fd, lambda: None)
        try:
            assert not await Inbound(sock=inside).join(asyncio.Protocol())
            assert inside.fileno() == -1
        finally:
            loop.remove_reader(fd)
            outside.close()

    run(main)
