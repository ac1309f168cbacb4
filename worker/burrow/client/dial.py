"""Client side of the relay handshake: dial the tunnel server, build BIND/CONNECT, read the reply.

Spec: docs/protocol.md, BIND, CONNECT and Features (UserAuth)
(feature order emitted by gost's connectors). Both dialects:

    relay  BIND     CMD 0x02[|0x80]  [UserAuth] Addr(":0") Tunnel(16)
    relay  CONNECT  CMD 0x01[|0x80]  [Network(udp)] [UserAuth] [Addr(target)] Tunnel(16)
    tunnel BIND     CMD 0x02[|0x80]  [Network(udp)] [UserAuth] Addr(src) Addr(":0") Tunnel(20)
    tunnel CONNECT  CMD 0x01[|0x80]  [Network(udp)] [UserAuth] Addr(src) Addr(target) Tunnel(20)

The handshake runs on a raw non-blocking socket (loop.sock_*), so that whatever the server sends
right after its reply (smux frames, payload) stays in our hands as "trailing" bytes and can be fed
to the next protocol without loss.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
from typing import Any, Final

from burrow.common.ids import TunnelId
from burrow.config.plan_types import ServerNode
from burrow.proto.addr import ATYP_DOMAIN, Address, join_hostport, split_hostport
from burrow.proto.flags import CMD_FLAG_UDP
from burrow.proto.relay import Cmd, RelayReader, RelayRequest, RelayResponse
from burrow.proto.relay_features import (
    NETWORK_UDP,
    AddrFeature,
    Feature,
    NetworkFeature,
    TunnelFeature,
    UserAuthFeature,
)

RESPONSE_TIMEOUT: Final = 10.0
RECV_CHUNK: Final = 65536
# The bind address Burrow's clients send is always ":0": gost ignores it in tunnel mode, and
# v3.2.6 sends it as an empty domain (captured), not as 0.0.0.0.
BIND_ADDRESS: Final = Address("", 0, ATYP_DOMAIN)


def dial_host(host: str) -> str:
    """An empty host in a dial address means 127.0.0.1, as gost dials it."""
    return host or "127.0.0.1"


def sockname_text(sock: socket.socket) -> str:
    """``host:port`` of the socket's local end (IPv6 in brackets)."""
    name = sock.getsockname()
    return join_hostport(str(name[0]), int(name[1]))


def _address(text: str) -> Address:
    if not text:
        return BIND_ADDRESS
    return Address.from_hostport(text)


def _common(node: ServerNode, udp: bool) -> list[Feature]:
    features: list[Feature] = []
    if udp and node.dialect == "tunnel":
        features.append(NetworkFeature(NETWORK_UDP))
    if node.auth is not None:
        features.append(UserAuthFeature(node.auth[0], node.auth[1]))
    return features


def _tunnel_feature(node: ServerNode, tunnel_id: TunnelId) -> TunnelFeature:
    if node.dialect == "relay":
        return TunnelFeature(TunnelId(tunnel_id.uuid), 16)
    # Clients never set the flag byte (the server derives private/udp itself); byte 19 = weight.
    return TunnelFeature(TunnelId(tunnel_id.uuid, 0, tunnel_id.weight or node.weight), 20)


def build_bind_request(node: ServerNode, tunnel_id: TunnelId, *, udp: bool, src: str) -> bytes:
    """BIND registering ``tunnel_id``; ``src`` is the local socket address (tunnel dialect)."""
    cmd = Cmd.BIND | (CMD_FLAG_UDP if udp else 0)
    features = _common(node, udp)
    if node.dialect == "tunnel":
        features.append(AddrFeature(_address(src)))
    features.append(AddrFeature(BIND_ADDRESS))
    features.append(_tunnel_feature(node, tunnel_id))
    return RelayRequest(cmd, tuple(features)).encode()


def build_connect_request(
    node: ServerNode, tunnel_id: TunnelId, target: str, *, udp: bool, src: str
) -> bytes:
    """CONNECT to ``target`` (``host:port``) through ``tunnel_id``; ``src`` = the visitor's peer."""
    cmd = Cmd.CONNECT | (CMD_FLAG_UDP if udp else 0)
    features: list[Feature] = []
    if udp:
        # rc9+ relay connectors send Network(udp) on CONNECT too (but not on BIND).
        features.append(NetworkFeature(NETWORK_UDP))
    if node.auth is not None:
        features.append(UserAuthFeature(node.auth[0], node.auth[1]))
    if node.dialect == "tunnel":
        features.append(AddrFeature(_address(src)))
        features.append(AddrFeature(_address(target)))
    elif target:
        features.append(AddrFeature(Address.from_hostport(target)))
    features.append(_tunnel_feature(node, tunnel_id))
    return RelayRequest(cmd, tuple(features)).encode()


# uvloop's getaddrinfo and sock_connect always go through libuv's thread pool, even for an IP
# literal: 4 threads and the NSS modules, about 0.5 MB kept for good. A tunnel server given by
# IP (the usual case) needs neither, so the connect below is done on the loop itself.


def _numeric(host: str, port: int) -> list[tuple[int, int, int, str, tuple[str, int]]]:
    """The address info of an IP literal without a resolver round trip, else []."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except OSError:
            continue
        return [(family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (host, port))]
    return []


async def _sock_connect(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, addr: tuple[Any, ...]
) -> None:
    """Non-blocking connect of ``sock`` to the resolved ``addr``; OSError on failure."""
    err = sock.connect_ex(addr)
    if err == errno.EINPROGRESS:
        fd = sock.fileno()
        writable: asyncio.Future[None] = loop.create_future()

        def connected() -> None:
            if not writable.done():
                writable.set_result(None)

        loop.add_writer(fd, connected)
        try:
            await writable
        finally:
            loop.remove_writer(fd)
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if err:
        raise OSError(err, os.strerror(err))  # e.g. ConnectionRefusedError, as sock_connect's


async def open_connected_socket(node: ServerNode, timeout: float) -> socket.socket:
    """A non-blocking TCP socket connected to the server (TCP_NODELAY set); OSError/TimeoutError."""
    loop = asyncio.get_running_loop()
    host, port = dial_host(node.addr.host), node.addr.port
    last: OSError | None = None
    async with asyncio.timeout(timeout):
        infos = _numeric(host, port) or await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        for family, type_, proto, _, addr in infos:
            sock = socket.socket(family, type_, proto)
            try:
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                await _sock_connect(loop, sock, addr)
            except OSError as exc:
                sock.close()
                last = exc
                continue
            except BaseException:
                sock.close()
                raise
            return sock
    raise last or OSError(f"cannot resolve {join_hostport(host, port)}")


async def read_response(sock: socket.socket, timeout: float) -> tuple[RelayResponse, bytes]:
    """Read one relay response; returns it and the bytes that followed it in the same reads.

    Raises TimeoutError, ConnectionError (EOF first) or RemoteProtocolError (malformed reply).
    """
    loop = asyncio.get_running_loop()
    reader = RelayReader("response")
    async with asyncio.timeout(timeout):
        while True:
            data = await loop.sock_recv(sock, RECV_CHUNK)
            if not data:
                raise ConnectionError("server closed the connection before replying")
            reader.receive_data(data)
            msg = reader.next_event()
            if isinstance(msg, RelayResponse):
                return msg, reader.trailing()


def endpoint_text(host: str, port: int) -> str:
    """``host:port`` for logs, with the dial-time default host filled in."""
    return join_hostport(dial_host(host), port)


def target_of(addr: str) -> tuple[str, int]:
    """(host, port) to dial for a forwarder node address; empty host -> 127.0.0.1."""
    host, port = split_hostport(addr)
    return dial_host(host), port
