"""The PROXY header a tunnel client sends its backend first (gost's rtcp ``proxyProtocol``).

The source is the visitor's address from the per-stream header (the server puts the real
address there, PROXY-stripped when it sits behind a trusted load balancer); the destination is
the backend address the connection reached. :class:`ProxyPipe` writes the header as the local
connection opens, ahead of the stream's bytes (it is not stream payload, so it is not counted
against the stream's receive window). A visitor address the header does not carry (empty, or a
name) becomes ``PROXY UNKNOWN`` (v1) or ``AF_UNSPEC`` (v2): the backend then keeps the client's
own address, as the spec says.
"""

from __future__ import annotations

import asyncio
import ipaddress

from burrow.net.mux_stream import MuxStream
from burrow.proto.addr import ATYP_DOMAIN, Address
from burrow.proto.proxy_protocol import HostPort, build

from .acks import ClientPipe, StreamAcks


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def proxy_header(version: int, src: Address | None, target: tuple[str, int]) -> bytes:
    """PROXY v1/v2 bytes for a stream from ``src`` to the backend at ``target``."""
    if src is None or src.atyp == ATYP_DOMAIN or _ip(src.host) is None:
        return build(version, None, None)
    source: HostPort = (src.host, src.port)
    dst_ip = _ip(target[0])
    if dst_ip is None:
        # A backend named by host name: its address is not known before the dial; a zero
        # address of the source's family keeps the header valid (receivers use the source).
        dst_ip = ipaddress.ip_address("0.0.0.0" if ":" not in src.host else "::")
    return build(version, source, (str(dst_ip), target[1]))


class ProxyPipe(ClientPipe):
    """A ClientPipe whose local connection starts with a PROXY header for ``src``."""

    __slots__ = ("_src", "_version")

    def __init__(
        self,
        stream: MuxStream,
        acks: StreamAcks,
        version: int,
        src: Address | None,
        *,
        early: list[bytes],
    ) -> None:
        super().__init__(stream, acks, early=early)
        self._version = version
        self._src = src

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        target = (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) else ("", 0)
        if self.stream is not None and not self.stream.closed:  # an abandoned stream sends nothing
            transport.write(proxy_header(self._version, self._src, target))  # type: ignore[attr-defined]
        super().connection_made(transport)
