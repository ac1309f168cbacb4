"""Pick the inherited (systemd, LISTEN_FDS) socket that serves a bind request.

systemd's ``ListenStream=8443`` gives ``[::]:8443`` with IPV6_V6ONLY off on an IPv6 host (both
families) and ``0.0.0.0:8443`` on a host without IPv6; both serve a ``:8443`` request. Matching
is by socket type, port and a family-compatible address, best match first:

3. the same address (for ``::``: dual-stack);
2. ``::`` with IPV6_V6ONLY on for a dual-stack request (IPv6 only, but the port is ours);
1. the other family's wildcard: ``0.0.0.0`` for ``::``, dual-stack ``::`` for ``0.0.0.0``.

A request for port 0 only takes a socket with the same address.
"""

from __future__ import annotations

import ipaddress
import socket

EXACT, V6_ONLY, OTHER_FAMILY = 3, 2, 1


def v6only(sock: socket.socket) -> bool:
    """IPV6_V6ONLY of an AF_INET6 socket (False for AF_INET)."""
    if sock.family != socket.AF_INET6:
        return False
    return bool(sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY))


def match_score(sock: socket.socket, family: int, sock_type: int, host: str, port: int) -> int:
    """How well ``sock`` serves a request for ``host:port`` (0 = not at all)."""
    if sock.type != sock_type or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return 0
    try:
        name = sock.getsockname()
        have = ipaddress.ip_address(name[0])
        want = ipaddress.ip_address(host)
    except (OSError, ValueError):
        return 0
    if port and name[1] != port:
        return 0
    if sock.family == family and have == want:
        if want.version == 6 and want.is_unspecified and v6only(sock):
            return V6_ONLY if port else 0
        return EXACT
    if not port or not (have.is_unspecified and want.is_unspecified):
        return 0
    if sock.family == socket.AF_INET:
        return OTHER_FAMILY  # 0.0.0.0 for a "::" request
    return 0 if v6only(sock) else OTHER_FAMILY  # dual-stack "::" serves a 0.0.0.0 request


def take_adopted(
    adopted: list[socket.socket], family: int, sock_type: int, host: str, port: int
) -> socket.socket | None:
    """Remove and return the best inherited socket for the request, if any serves it."""
    best: tuple[int, socket.socket] | None = None
    for sock in adopted:
        score = match_score(sock, family, sock_type, host, port)
        if score and (best is None or score > best[0]):
            best = (score, sock)
    if best is None:
        return None
    adopted.remove(best[1])
    return best[1]
