"""File descriptor passing over AF_UNIX SOCK_SEQPACKET with SCM_RIGHTS, without threads.

One record = one datagram: the payload bytes plus at most one fd in an SCM_RIGHTS control
message. SEQPACKET keeps record boundaries, so a record is never split or merged, and several
processes may send into the same socket.

Ownership (docs/architecture.md, Processes: Handoff): the sender keeps its fd until ``sendmsg``
returned, then closes it (its caller does); the receiver owns what ``recv_fd`` returns, CLOEXEC from
the moment it lands. A truncated payload or control message is an error, and any fd that did arrive
with it, or any fd beyond the first, is closed here so none leaks.
"""

from __future__ import annotations

import array
import asyncio
import socket

from burrow.ipc.messages import MAX_HANDOFF_RECORD

# Largest payload recv_fd accepts; a bigger record arrives with MSG_TRUNC and is refused.
MAX_RECORD = MAX_HANDOFF_RECORD
# Room for a few fds, so a misbehaving sender's extras are received (and closed), not truncated.
MAX_FDS = 4
_FD_SIZE = array.array("i").itemsize


class FdPassError(OSError):
    """A record was truncated or malformed; its fds (if any) are already closed."""


def send_fd(sock: socket.socket, payload: bytes, fd: int) -> None:
    """Send ``payload`` with ``fd`` as one record; BlockingIOError when the socket is full."""
    fds = array.array("i", [fd])
    sent = sock.sendmsg([payload], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds.tobytes())])
    if sent != len(payload):
        # Cannot happen on SEQPACKET (all or nothing), but a silent partial record would be worse.
        raise FdPassError(f"short sendmsg: {sent} of {len(payload)} bytes")


def _fds_from(ancdata: list[tuple[int, int, bytes]]) -> list[int]:
    fds: list[int] = []
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            arr = array.array("i")
            arr.frombytes(data[: len(data) - len(data) % _FD_SIZE])
            fds.extend(arr)
    return fds


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        try:
            socket.close(fd)
        except OSError:
            pass


def recv_fd(sock: socket.socket, *, max_size: int = MAX_RECORD) -> tuple[bytes, int | None]:
    """Receive one record: (payload, fd or None). BlockingIOError when none is queued.

    ``(b"", None)`` is end of stream (the peer closed) or an empty record.
    """
    flags = getattr(socket, "MSG_CMSG_CLOEXEC", 0)
    payload, ancdata, msg_flags, _ = sock.recvmsg(
        max_size, socket.CMSG_SPACE(MAX_FDS * _FD_SIZE), flags
    )
    fds = _fds_from(ancdata)
    if msg_flags & socket.MSG_CTRUNC:
        _close_all(fds)
        raise FdPassError("control message truncated (MSG_CTRUNC): descriptors were lost")
    if msg_flags & socket.MSG_TRUNC:
        _close_all(fds)
        raise FdPassError(f"record larger than {max_size} bytes was truncated (MSG_TRUNC)")
    if not fds:
        return payload, None
    _close_all(fds[1:])
    return payload, fds[0]


def _wake(fut: asyncio.Future[None]) -> None:
    # The writer callback may fire again before the waiting task runs.
    if not fut.done():
        fut.set_result(None)


async def send_fd_async(
    loop: asyncio.AbstractEventLoop,
    sock: socket.socket,
    payload: bytes,
    fd: int,
    timeout: float,
) -> None:
    """send_fd on a non-blocking socket, waiting (at most ``timeout``) while it is full.

    The loop holds one writer callback per fd, so callers serialise sends on one socket.
    """
    async with asyncio.timeout(timeout):
        while True:
            try:
                send_fd(sock, payload, fd)
                return
            except BlockingIOError:
                pass
            writable: asyncio.Future[None] = loop.create_future()
            loop.add_writer(sock.fileno(), _wake, writable)
            try:
                await writable
            finally:
                loop.remove_writer(sock.fileno())
