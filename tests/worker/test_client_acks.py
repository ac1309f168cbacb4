"""Tunnel-client side of failover (burrow.client.acks; docs/failover.md), against a fake server.

The client acks each new stream with a NOP, beats every HEARTBEAT while a stream waits for its
target's first byte, and delivers nothing on a stream the server closed before the dial ended.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import pytest

from burrow.client.tunnel import TunnelClient
from burrow.net.mux import MuxConnection
from burrow.proto.smux import FIN, HEADER
from burrow.routing.health import HEARTBEAT

from .test_client import (
    WAIT,
    EchoServer,
    FakeServer,
    bind_reply,
    client_plan,
    header,
    open_stream,
    recv_request,
    run,
    running,
    server_node,
    smux_session,
    target,
)


async def until(what: str, cond: Callable[[], bool], timeout: float = WAIT) -> None:
    """Wait for ``cond()`` with a deadline (``what`` names it in the failure)."""
    try:
        async with asyncio.timeout(timeout):
            while not cond():
                await asyncio.sleep(0.01)  # polling a counter under a deadline
    except TimeoutError:
        raise AssertionError(f"no {what} within {timeout}s") from None


async def bound_client(fake: FakeServer, dialect: str) -> MuxConnection:
    conn, _ = await fake.accept()
    await recv_request(conn)
    await asyncio.get_running_loop().sock_sendall(conn, bind_reply(dialect))
    return await fake.attach(conn, smux_session(dialect))


@pytest.mark.parametrize("dialect", ["relay", "tunnel"])
def test_acks_at_once_and_beats_while_the_target_is_silent(dialect: str) -> None:
    async def main() -> None:
        echo = await EchoServer().start()  # echoes only what it gets: silent until then
        fake = FakeServer()
        plan = client_plan(server_node(fake.port, dialect), [target("app", echo.port)])
        try:
            async with running(TunnelClient(plan).run()):
                mux = await bound_client(fake, dialect)
                nops = mux.session.nops_received
                col = open_stream(mux, header("app.local:0"))
                await until("the ack", lambda: mux.session.nops_received > nops, 0.2)
                # Beats while the target has not spoken: a few within a second.
                at = mux.session.nops_received
                await until("heartbeats", lambda: mux.session.nops_received >= at + 3, 1.5)
                assert col.stream is not None
                col.stream.write(b"ping")
                assert await col.wait_len(4) == b"ping"
                # Replied: the beats stop. Watching a window of several heartbeats for silence.
                at = mux.session.nops_received
                await asyncio.sleep(4 * HEARTBEAT)
                assert mux.session.nops_received - at <= 1  # one beat may have been in flight
        finally:
            fake.close()
            echo.close()

    run(main)


@pytest.mark.parametrize("dialect", ["relay", "tunnel"])
def test_a_stream_closed_before_the_dial_ends_delivers_nothing(dialect: str) -> None:
    """A client resumed after SIGSTOP reads SYN, request and FIN at once: the server has
    replayed that request elsewhere, so the target must not see it."""

    async def main() -> None:
        lsock = socket.socket()
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(4)
        lsock.setblocking(False)
        port = lsock.getsockname()[1]
        fake = FakeServer()
        plan = client_plan(server_node(fake.port, dialect), [target("app", port)])
        loop = asyncio.get_running_loop()
        try:
            async with running(TunnelClient(plan).run()):
                mux = await bound_client(fake, dialect)
                session = mux.session
                sid, syn = session.open_stream()
                bufs, _ = session.send(sid, header("app.local:0") + b"GET /twice HTTP/1.1\r\n\r\n")
                fin = HEADER.pack(session.version, FIN, 0, sid)
                mux.transport_writelines([syn, *bufs, fin])  # one write: one read on the client
                async with asyncio.timeout(WAIT):
                    conn, _ = await loop.sock_accept(lsock)
                with conn:
                    conn.setblocking(False)
                    async with asyncio.timeout(WAIT):
                        got = await loop.sock_recv(conn, 4096)
                    assert got == b"", got  # closed without a byte
                # A stream that is not abandoned still carries its bytes.
                open_stream(mux, header("app.local:0") + b"kept")
                async with asyncio.timeout(WAIT):
                    conn, _ = await loop.sock_accept(lsock)
                with conn:
                    conn.setblocking(False)
                    async with asyncio.timeout(WAIT):
                        assert await loop.sock_recv(conn, 4096) == b"kept"
        finally:
            fake.close()
            lsock.close()

    run(main)
