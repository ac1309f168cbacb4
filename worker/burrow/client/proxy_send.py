"""The PROXY header a tunnel client sends its backend first (gost's rtcp ``proxyProtocol``).

The source is the visitor's address from the per-stream header (the server puts the real
address there, PROXY-stripped when it sits behind a trusted load balancer); the destination is
the backend address being dialled. A visitor address the header does not carry (empty, or a
name) becomes ``PROXY UNKNOWN`` (v1) or ``AF_UNSPEC`` (v2): the backend then keeps the client's
own address, as the spec says.
"""

from __future__ import annotations

import ipaddress

from burrow.proto.addr import ATYP_DOMAIN, Address
from burrow.proto.proxy_protocol import HostPort, build


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
