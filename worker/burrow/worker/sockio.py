"""Small socket helpers for handshakes done before a transport takes a socket over."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Coroutine
from typing import Any

from burrow.proto.addr import join_hostport

ACCEPT_ERROR_PAUSE = 0.1


class PeerClosed(ConnectionError):
    """The peer closed before sending what the protocol needs."""


async def recv_exact(sock: socket.socket, n: int) -> bytes:
    """Read exactly ``n`` bytes (the caller bounds the time)."""
    loop = asyncio.get_running_loop()
    buf = bytearray()
    while len(buf) < n:
        chunk = await loop.sock_recv(sock, n - len(buf))
        if not chunk:
            raise PeerClosed(f"peer closed after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def peer_name(sock: socket.socket) -> str:
    """The peer's "ip:port", or "" when the socket has none."""
    try:
        addr = sock.getpeername()
    except OSError:
        return ""
    if isinstance(addr, tuple):
        return join_hostport(str(addr[0]), int(addr[1]))
    return ""


async def accept_loop(
    listener: socket.socket,
    handle: Callable[[socket.socket], Coroutine[Any, Any, None]],
    name: str,
) -> None:
    """Accept forever, one task per connection; EMFILE and friends pause instead of spinning."""
    loop = asyncio.get_running_loop()
    listener.setblocking(False)
    tasks: set[asyncio.Task[None]] = set()
    while True:
        try:
            sock, _ = await loop.sock_accept(listener)
        except OSError:
            waiter = loop.create_future()
            handle_ = loop.call_later(ACCEPT_ERROR_PAUSE, waiter.set_result, None)
            try:
                await waiter
            finally:
                handle_.cancel()
            continue
        t = loop.create_task(handle(sock), name=name)
        tasks.add(t)
        t.add_done_callback(tasks.discard)
