"""fdpass: real SCM_RIGHTS over AF_UNIX SOCK_SEQPACKET, in one process and across two."""

from __future__ import annotations

import array
import asyncio
import fcntl
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvloop

from burrow.net.fdpass import MAX_FDS, FdPassError, recv_fd, send_fd, send_fd_async

ROOT = Path(__file__).resolve().parents[2]
WAIT = 5.0


def open_fds() -> set[int]:
    """Open descriptors, without the one listdir itself used while listing."""
    listed = [int(n) for n in os.listdir("/proc/self/fd")]
    open_now = set()
    for fd in listed:
        try:
            os.fstat(fd)
        except OSError:
            continue
        open_now.add(fd)
    return open_now


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    a.setblocking(False)
    b.setblocking(False)
    yield a, b
    a.close()
    b.close()


@pytest.fixture
def tcp_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """(client, accepted server side) of a real loopback TCP connection."""
    with socket.create_server(("127.0.0.1", 0)) as lst:
        client = socket.create_connection(lst.getsockname(), timeout=WAIT)
        server, _ = lst.accept()
    yield client, server
    client.close()
    server.close()


def test_payload_and_fd_arrive_and_the_fd_works(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    x, y = socket.socketpair()
    with x, y:
        send_fd(a, b"record-1", x.fileno())
        payload, fd = recv_fd(b)
        assert payload == b"record-1" and fd is not None and fd != x.fileno()
        with socket.socket(fileno=fd) as got:
            got.sendall(b"via passed fd")
            assert y.recv(100) == b"via passed fd"
            # The received descriptor must not leak into children.
            assert fcntl.fcntl(got.fileno(), fcntl.F_GETFD) & fcntl.FD_CLOEXEC


def test_record_without_fd_and_empty_queue(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    with pytest.raises(BlockingIOError):
        recv_fd(b)
    a.send(b"no descriptor")
    assert recv_fd(b) == (b"no descriptor", None)


def test_records_keep_their_boundaries(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    r, w = os.pipe()
    try:
        for i in range(5):
            send_fd(a, b"n%d" % i, r)
        for i in range(5):
            payload, fd = recv_fd(b)
            assert payload == b"n%d" % i and fd is not None
            os.close(fd)
    finally:
        os.close(r)
        os.close(w)


def _send_raw(sock: socket.socket, payload: bytes, fds: list[int]) -> None:
    sock.sendmsg(
        [payload], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())]
    )


def test_ctrunc_is_an_error_and_leaks_nothing(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    r, w = os.pipe()
    try:
        before = open_fds()
        # More descriptors than recv_fd makes room for: the kernel truncates the control data.
        _send_raw(a, b"too many", [r] * (MAX_FDS * 4))
        with pytest.raises(FdPassError, match="MSG_CTRUNC"):
            recv_fd(b)
        assert open_fds() == before
    finally:
        os.close(r)
        os.close(w)


def test_trunc_is_an_error_and_the_fd_is_closed(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    r, w = os.pipe()
    try:
        before = open_fds()
        _send_raw(a, b"x" * 200, [r])
        with pytest.raises(FdPassError, match="MSG_TRUNC"):
            recv_fd(b, max_size=100)
        assert open_fds() == before
    finally:
        os.close(r)
        os.close(w)


def test_extra_fds_are_closed_and_the_first_is_returned(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    a, b = pair
    r, w = os.pipe()
    try:
        before = open_fds()
        _send_raw(a, b"two", [w, r])
        payload, fd = recv_fd(b)
        assert payload == b"two" and fd is not None
        assert open_fds() == before | {fd}
        os.write(fd, b"!")  # the first one sent was the write end
        assert os.read(r, 1) == b"!"
        os.close(fd)
    finally:
        os.close(r)
        os.close(w)


def test_bytes_written_before_the_handoff_are_still_readable(
    pair: tuple[socket.socket, socket.socket], tcp_pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    client, server = tcp_pair
    client.sendall(b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
    assert server.recv(4, socket.MSG_PEEK) == b"GET "  # data is queued on the accepted socket
    send_fd(a, b"handoff", server.fileno())
    server.close()  # the sender's copy goes; the kernel keeps the connection for the receiver
    _, fd = recv_fd(b)
    assert fd is not None
    with socket.socket(fileno=fd) as got:
        got.settimeout(WAIT)
        assert got.recv(100) == b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"
        got.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")
        client.settimeout(WAIT)
        assert client.recv(100) == b"HTTP/1.1 204 No Content\r\n\r\n"


RECEIVER = textwrap.dedent(
    """
    import os, select, socket, sys
    from burrow.net.fdpass import recv_fd
    inbox = socket.socket(fileno=int(sys.argv[1]))
    inbox.setblocking(False)
    if not select.select([inbox], [], [], 10)[0]:
        sys.exit(2)
    payload, fd = recv_fd(inbox)
    conn = socket.socket(fileno=fd)
    conn.settimeout(10)
    data = conn.recv(100)
    conn.sendall(b"child " + str(os.getpid()).encode() + b" got " + payload + b"+" + data)
    conn.close()
    """
)


def test_fd_crosses_a_process_boundary(
    pair: tuple[socket.socket, socket.socket], tcp_pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    client, server = tcp_pair
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(str(ROOT / d) for d in ("shared", "worker")))
    child = subprocess.Popen(
        [sys.executable, "-c", RECEIVER, str(b.fileno())], pass_fds=[b.fileno()], env=env
    )
    try:
        client.sendall(b"early bytes")
        send_fd(a, b"hdr", server.fileno())
        server.close()
        client.settimeout(WAIT)
        answer = client.recv(200)
        assert answer == b"child %d got hdr+early bytes" % child.pid
        assert child.wait(timeout=WAIT) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=WAIT)


def _fill(sock: socket.socket) -> int:
    """Queue records until the socket is full; returns how many went in."""
    n = 0
    while True:
        try:
            sock.send(b"f" * 4096)
        except BlockingIOError:
            return n
        n += 1


def test_send_fd_async_waits_for_room(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    x, y = socket.socketpair()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        queued = _fill(a)
        assert queued > 0
        sender = asyncio.create_task(send_fd_async(loop, a, b"late", x.fileno(), timeout=WAIT))
        await asyncio.sleep(0)  # let the sender hit the full socket and park on add_writer
        assert not sender.done()
        for _ in range(queued):
            assert recv_fd(b) == (b"f" * 4096, None)
        async with asyncio.timeout(WAIT):
            await sender
        payload, fd = recv_fd(b)  # sendmsg returned, so the record is queued
        assert payload == b"late" and fd is not None
        os.close(fd)

    with x, y, asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())


def test_send_fd_async_times_out_on_a_full_socket(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    a, _ = pair

    async def main() -> None:
        _fill(a)
        with pytest.raises(TimeoutError):
            await send_fd_async(asyncio.get_running_loop(), a, b"x", a.fileno(), timeout=0.05)

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())
