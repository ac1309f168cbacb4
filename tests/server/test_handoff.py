"""HandoffOutbox -> HandoffInbox: a live TCP connection moves between loops and processes.

Also covers the lifeline watcher, the other piece of process plumbing a worker inherits.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
import uvloop

from burrow.ipc.messages import ConnectorInfo, HandoffHeader, Snapshot, encode_handoff
from burrow.ipc.spec import WorkerSpec
from burrow.net.fdpass import send_fd
from burrow.proto.errors import LocalProtocolError
from burrow.server.handoff import MAX_HANDOFF_HOPS, HandoffInbox, HandoffOutbox
from burrow.server.pool import TunnelPool
from burrow.server.router import HTTP_STATUS, Router
from burrow.worker.bus import BusClient
from burrow.worker.lifeline import watch_lifeline

ROOT = Path(__file__).resolve().parents[2]
WAIT = 5.0
HEADER = HandoffHeader(
    kind="entrypoint",
    service="svc-0",
    tunnel_id="4d21094e-b74c-4916-86c1-d9fa36ea677b",
    connector_id="0f6e9f5a-0d3b-4d0c-9d55-6c1f1f4f2a10",
    network="tcp",
    peer="127.0.0.1:5555",
    target="",
    reply=-1,
    hops=1,
)
REQUEST = b"GET / HTTP/1.1\r\nHost: app.example.com\r\n\r\n"


def spec(index: int, *, inbox_fd: int = -1, outbox_fds: dict[int, int] | None = None) -> WorkerSpec:
    return WorkerSpec(
        index=index,
        count=2,
        generation=0,
        plans=b"",
        source=None,
        listeners=[],
        inbox_fd=inbox_fd,
        outbox_fds=outbox_fds or {},
        registry_endpoint="ipc:///unused/r",
        updates_endpoint="ipc:///unused/u",
        lifeline_fd=0,
        runtime_dir="/unused",
    )


def open_fds() -> set[int]:
    """Open descriptors, without the one listdir itself used while listing."""
    found = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            os.fstat(int(name))
        except OSError:
            continue
        found.add(int(name))
    return found


@pytest.fixture
def inbox_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """Worker 1's inbox socketpair (send end, receive end), as the supervisor would hold it."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    yield a, b
    a.close()
    b.close()


async def accept_with_prefix(lst: socket.socket) -> tuple[socket.socket, socket.socket, bytes]:
    """A client connects and sends REQUEST; the 'entrypoint' accepts and consumes it."""
    loop = asyncio.get_running_loop()
    client = socket.socket()
    client.setblocking(False)
    async with asyncio.timeout(WAIT):
        await loop.sock_connect(client, lst.getsockname())
        await loop.sock_sendall(client, REQUEST)
        conn, _ = await loop.sock_accept(lst)
        prefix = b""
        while len(prefix) < len(REQUEST):
            prefix += await loop.sock_recv(conn, 4096)
    return client, conn, prefix


def test_handoff_between_two_workers_in_one_loop(
    inbox_pair: tuple[socket.socket, socket.socket],
) -> None:
    a, b = inbox_pair

    async def main() -> None:
        loop = asyncio.get_running_loop()
        arrived: asyncio.Queue[tuple[HandoffHeader, bytes, socket.socket]] = asyncio.Queue()
        outbox = HandoffOutbox(spec(0, outbox_fds={1: os.dup(a.fileno())}))
        inbox = HandoffInbox(
            spec(1, inbox_fd=os.dup(b.fileno())), lambda h, p, s: arrived.put_nowait((h, p, s))
        )
        inbox.start()
        lst = socket.create_server(("127.0.0.1", 0))
        lst.setblocking(False)
        try:
            client, conn, prefix = await accept_with_prefix(lst)
            assert outbox.peers == [1]
            await outbox.send(1, HEADER, prefix, conn)
            assert conn.fileno() == -1  # the sender's copy is gone once the kernel has it
            async with asyncio.timeout(WAIT):
                header, got_prefix, sock = await arrived.get()
                assert header == HEADER and got_prefix == REQUEST
                assert not sock.getblocking()
                await loop.sock_sendall(client, b"more")
                assert await loop.sock_recv(sock, 100) == b"more"
                await loop.sock_sendall(sock, b"HTTP/1.1 200 OK\r\n\r\n")
                assert await loop.sock_recv(client, 100) == b"HTTP/1.1 200 OK\r\n\r\n"
            sock.close()
            client.close()
        finally:
            lst.close()
            inbox.close()
            outbox.close()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())


@pytest.mark.parametrize("hops", [1, MAX_HANDOFF_HOPS])
def test_adopt_hands_on_when_the_named_connector_vanished(
    inbox_pair: tuple[socket.socket, socket.socket], hops: int
) -> None:
    """Worker 0 adopts a connection for a connector it no longer has; worker 1 holds another one.

    Below the hop limit it moves on to worker 1 (one hop more, bytes intact); at the limit the
    visitor gets an HTTP 503 instead.
    """
    a, b = inbox_pair
    theirs = ConnectorInfo(
        tunnel_id=HEADER.tunnel_id,
        connector_id="7c0b7e43-52f1-4f0e-9a8e-3c2f7a9d1b22",
        worker=1,
        network="tcp",
        weight=1,
        dialect="relay",
        peer="127.0.0.1:9",
        since=1.0,
    )

    async def main() -> None:
        loop = asyncio.get_running_loop()
        arrived: asyncio.Queue[tuple[HandoffHeader, bytes, socket.socket]] = asyncio.Queue()
        inbox = HandoffInbox(
            spec(1, inbox_fd=os.dup(b.fileno())), lambda h, p, s: arrived.put_nowait((h, p, s))
        )
        inbox.start()
        bus = BusClient(spec(0))  # never started: its view is fed the way the registry would
        bus.view.on_snapshot(Snapshot(seq=0, connectors=[theirs]))
        outbox = HandoffOutbox(spec(0, outbox_fds={1: os.dup(a.fileno())}))
        router = Router(TunnelPool(0, bus), outbox)
        lst = socket.create_server(("127.0.0.1", 0))
        lst.setblocking(False)
        try:
            client, conn, prefix = await accept_with_prefix(lst)
            try:
                # HEADER names a connector worker 0 does not hold (its pool has none locally).
                router.adopt(msgspec.structs.replace(HEADER, hops=hops), prefix, conn)
                async with asyncio.timeout(WAIT):
                    if hops < MAX_HANDOFF_HOPS:
                        header, got_prefix, sock = await arrived.get()
                        with sock:
                            assert header == msgspec.structs.replace(
                                HEADER, connector_id=theirs.connector_id, hops=hops + 1
                            )
                            assert got_prefix == REQUEST
                            await loop.sock_sendall(client, b"more")
                            assert await loop.sock_recv(sock, 100) == b"more"
                            await loop.sock_sendall(sock, b"HTTP/1.1 200 OK\r\n\r\n")
                            assert await loop.sock_recv(client, 100) == b"HTTP/1.1 200 OK\r\n\r\n"
                    else:
                        reply = b""
                        while chunk := await loop.sock_recv(client, 4096):
                            reply += chunk
                        assert reply == HTTP_STATUS[503]  # answered here, then closed
                        assert arrived.empty()
            finally:
                client.close()
        finally:
            lst.close()
            inbox.close()
            outbox.close()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())


RECEIVER = textwrap.dedent(
    """
    import asyncio, sys
    import uvloop
    from burrow.ipc.spec import WorkerSpec
    from burrow.server.handoff import HandoffInbox

    async def main():
        loop = asyncio.get_running_loop()
        got = loop.create_future()
        spec = WorkerSpec(index=1, count=2, generation=0, plans=b"", source=None, listeners=[],
                          inbox_fd=int(sys.argv[1]), outbox_fds={}, registry_endpoint="",
                          updates_endpoint="", lifeline_fd=0, runtime_dir="")
        inbox = HandoffInbox(spec, lambda h, p, s: got.set_result((h, p, s)))
        inbox.start()
        async with asyncio.timeout(10):
            header, prefix, sock = await got
            data = await loop.sock_recv(sock, 100)
            reply = b"%s|%s|%s|%s" % (header.kind.encode(), header.peer.encode(), prefix, data)
            await loop.sock_sendall(sock, reply)
        sock.close()
        inbox.close()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())
    """
)


def test_handoff_to_another_process(inbox_pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = inbox_pair
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(str(ROOT / d) for d in ("shared", "worker")))
    child = subprocess.Popen(
        [sys.executable, "-c", RECEIVER, str(b.fileno())], pass_fds=[b.fileno()], env=env
    )

    async def main() -> None:
        loop = asyncio.get_running_loop()
        outbox = HandoffOutbox(spec(0, outbox_fds={1: os.dup(a.fileno())}))
        lst = socket.create_server(("127.0.0.1", 0))
        lst.setblocking(False)
        try:
            client, conn, prefix = await accept_with_prefix(lst)
            await outbox.send(1, HEADER, prefix, conn)
            async with asyncio.timeout(WAIT):
                await loop.sock_sendall(client, b"after")
                reply = b""
                while not reply.endswith(b"after"):
                    chunk = await loop.sock_recv(client, 4096)
                    assert chunk, reply
                    reply += chunk
            assert reply == b"entrypoint|127.0.0.1:5555|" + REQUEST + b"|after"
            client.close()
        finally:
            lst.close()
            outbox.close()

    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(main())
        assert child.wait(timeout=WAIT) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=WAIT)


def test_outbox_refuses_a_third_hop_and_unknown_peers(
    inbox_pair: tuple[socket.socket, socket.socket],
) -> None:
    a, _ = inbox_pair

    async def main() -> None:
        outbox = HandoffOutbox(spec(0, outbox_fds={1: os.dup(a.fileno())}))
        x, y = socket.socketpair()
        try:
            with pytest.raises(LocalProtocolError, match="more moves than 2"):
                await outbox.send(1, msgspec.structs.replace(HEADER, hops=3), b"", x)
            with pytest.raises(LocalProtocolError, match="worker 5"):
                await outbox.send(5, HEADER, b"", x)
            assert x.fileno() != -1  # on failure the caller still owns the connection
        finally:
            x.close()
            y.close()
            outbox.close()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())


def test_try_send_without_waiting(inbox_pair: tuple[socket.socket, socket.socket]) -> None:
    """try_send: sent now when there is room; False (connection still ours) when busy or full."""
    a, b = inbox_pair
    b.setblocking(False)

    async def main() -> None:
        outbox = HandoffOutbox(spec(0, outbox_fds={1: os.dup(a.fileno())}))
        x, y = socket.socketpair()
        try:
            assert not outbox.try_send(5, HEADER, b"", x)  # unknown worker
            assert outbox.try_send(1, HEADER, REQUEST, x)
            assert x.fileno() == -1  # the kernel holds the connection now
            data, fd = b.recvmsg(65536, socket.CMSG_SPACE(4))[:2]
            assert data == encode_handoff(HEADER, REQUEST) and fd
            for _, _, raw in fd:
                os.close(int.from_bytes(raw[:4], sys.byteorder))
            x2, y2 = socket.socketpair()
            async with outbox._locks[1]:  # an async send() in progress: do not overtake it
                assert not outbox.try_send(1, HEADER, b"", x2)
            sent = 0
            while True:  # fill the inbox: in-flight descriptors die with the socketpair
                extra = socket.socket(fileno=os.dup(x2.fileno()))
                if not outbox.try_send(1, HEADER, b"", extra):
                    assert extra.fileno() != -1  # full inbox: False, the caller keeps it
                    extra.close()
                    break
                sent += 1
                assert sent < 100_000
            assert sent > 0
            x2.close()
            y2.close()
        finally:
            y.close()
            outbox.close()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())


def test_inbox_drops_bad_records_and_keeps_serving(
    inbox_pair: tuple[socket.socket, socket.socket],
) -> None:
    a, b = inbox_pair

    async def main() -> None:
        arrived: asyncio.Queue[tuple[HandoffHeader, bytes, socket.socket]] = asyncio.Queue()
        inbox = HandoffInbox(
            spec(1, inbox_fd=os.dup(b.fileno())), lambda h, p, s: arrived.put_nowait((h, p, s))
        )
        x, y = socket.socketpair()
        r, w = os.pipe()
        before = open_fds()
        try:
            send_fd(a, b"\x00\x05garbage", x.fileno())  # undecodable header, with an fd
            a.send(encode_handoff(HEADER, b"no fd"))  # a record without its connection
            send_fd(a, encode_handoff(HEADER, b"pipe"), r)  # not a socket
            send_fd(a, encode_handoff(HEADER, b"good"), x.fileno())
            inbox.start()
            async with asyncio.timeout(WAIT):
                _, prefix, sock = await arrived.get()
            assert prefix == b"good" and arrived.empty()
            sock.close()
            assert open_fds() == before  # every descriptor of a dropped record was closed
        finally:
            inbox.close()
            for s in (x, y):
                s.close()
            os.close(r)
            os.close(w)

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())


def test_single_worker_inbox_is_a_no_op() -> None:
    async def main() -> None:
        inbox = HandoffInbox(spec(0), lambda h, p, s: None)
        inbox.start()
        inbox.close()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())


def test_lifeline_eof_fires_once() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        r, w = os.pipe()
        fired: asyncio.Future[None] = loop.create_future()
        calls = []

        def on_eof() -> None:
            calls.append(1)
            fired.set_result(None)

        watch_lifeline(loop, r, on_eof)
        os.write(w, b"noise")  # data is not death
        os.close(w)
        async with asyncio.timeout(WAIT):
            await fired
        assert calls == [1]
        with pytest.raises(OSError):
            os.fstat(r)  # the watcher closed its end

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())
