"""HTTP -> HTTPS redirect for entry-point hostnames with a certificate and ``redirect`` on.

A plain HTTP request for such a host is answered ``308 Permanent Redirect`` to
``https://<host><path>`` (308 keeps the method and body, unlike 301/302) and closed; it never
reaches the tunnel. The port is dropped: the HTTPS side is on 443 in production.
"""

from __future__ import annotations

from typing import Protocol

from burrow.proto.sniff import http_host_port

MAX_TARGET = 8192


class Redirects(Protocol):
    def redirects(self, host: str) -> bool: ...


def redirect_reply(host_header: str, head: bytes, certs: Redirects) -> bytes | None:
    """The 308 reply for this request, or None when ``host`` is not redirected."""
    try:
        host, _ = http_host_port(host_header, 80)
    except ValueError:
        return None
    if not certs.redirects(host):
        return None
    line = head.split(b"\n", 1)[0].rstrip(b"\r").split(b" ")
    target = line[1] if len(line) == 3 else b"/"
    if not target.startswith(b"/"):
        # absolute-form (http://host/path): keep the path only, the host is the Host header's
        _, _, rest = target.partition(b"://")
        path = rest.partition(b"/")[2]
        target = b"/" + path
    if len(target) > MAX_TARGET or any(c < 0x21 or c > 0x7E for c in target):
        target = b"/"
    shown = f"[{host}]" if ":" in host else host
    location = f"https://{shown}".encode() + target
    head_only = head.startswith(b"HEAD ")
    body = b"" if head_only else b"Redirecting to " + location + b"\n"
    return (
        b"HTTP/1.1 308 Permanent Redirect\r\nLocation: " + location + b"\r\n"
        b"Content-Type: text/plain\r\nContent-Length: " + str(len(body)).encode() + b"\r\n"
        b"Connection: close\r\n\r\n" + body
    )
