"""PROXY protocol on the relay port and the entry points: accepted from trusted networks only.

With ``proxyProtocol`` on, a connection may start with a PROXY v1/v2 header (optional per
connection, as in gost). From a peer inside ``proxyProtocol.trusted`` the header is removed and
its source address becomes the connection's peer: logs, the failed-login throttle and the
per-stream header sent to the tunnel client all see the visitor's real address. From any other
peer a header is a spoofing attempt: one log line and the connection is closed. A connection
without a header is served as it came. The codec is burrow.proto.proxy_protocol.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from burrow.common.logfmt import event
from burrow.proto.addr import join_hostport
from burrow.proto.errors import ProtocolError
from burrow.proto.proxy_protocol import detect, parse_proxy_header

if TYPE_CHECKING:
    from burrow.server.inbound import Handshake

log = logging.getLogger("burrow.proxyproto")

_Net = ipaddress.IPv4Network | ipaddress.IPv6Network


class ProxyGate:
    """Strips a trusted PROXY header off the start of a Handshake's buffer (one per service)."""

    __slots__ = ("nets",)

    def __init__(self, trusted: Sequence[str]) -> None:
        self.nets: tuple[_Net, ...] = tuple(ipaddress.ip_network(n, strict=False) for n in trusted)

    def trusts(self, host: str) -> bool:
        """True when ``host`` (the TCP peer's address) may send a PROXY header."""
        try:
            ip = ipaddress.ip_address(host.partition("%")[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # a dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d
        return any(ip in net for net in self.nets)

    def admit(self, h: Handshake) -> bool:
        """True when ``h.buf`` holds bytes for ``inspect``; False to wait (or ``h`` was closed)."""
        found = detect(h.buf)
        if found is None:
            return False  # "PRO..." or part of the v2 signature: wait (the deadline still runs)
        if not found:
            h.gate = None
            return True
        tcp_peer = h.peer
        if not self.trusts(_host_of(h)):
            self._refuse(h, "PROXY header from an untrusted peer", tcp_peer)
            return False
        try:
            parsed = parse_proxy_header(h.buf)
        except ProtocolError as exc:
            self._refuse(h, f"bad PROXY header: {exc}", tcp_peer)
            return False
        if parsed is None:
            return False
        header, used = parsed
        del h.buf[:used]
        h.gate = None
        if header.src is not None:
            h.peer = join_hostport(*header.src)
        event(log, logging.DEBUG, "proxy.header", via=tcp_peer, peer=h.peer, v=header.version)
        return bool(h.buf)

    def _refuse(self, h: Handshake, why: str, peer: str) -> None:
        if h.reject is not None:
            h.reject(logging.WARNING, "proxy.refused", why, peer=peer)
        else:
            event(log, logging.WARNING, "proxy.refused", reason=why, peer=peer)
        h.gate = None
        h._drop()


def _host_of(h: Handshake) -> str:
    t = h.transport
    addr = t.get_extra_info("peername") if t is not None else None
    return str(addr[0]) if isinstance(addr, tuple) and addr else ""


def gate_for(version: int, trusted: Sequence[str]) -> ProxyGate | None:
    """The gate of a service, or None when PROXY protocol is off."""
    return ProxyGate(trusted) if version else None
