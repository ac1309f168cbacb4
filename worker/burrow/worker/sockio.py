"""Small socket helpers for handshakes done before a transport takes a socket over."""

from __future__ import annotations

import asyncio
import socket

from burrow.proto.addr import join_hostport


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
