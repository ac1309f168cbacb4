"""Relay address: the DATA of an Addr feature, and gost's host:port text rules.

Spec: docs/protocol.md, Features (Addr).

    offset  size  field
    0       1     ATYP   0x01 IPv4, 0x03 domain name, 0x04 IPv6
    1       var   ADDR   IPv4: 4 bytes | IPv6: 16 bytes | domain: 1 length byte + that many bytes
    var     2     PORT   uint16 big-endian

Text in, text out, like gost: an Address keeps the host string it was given (so a host that is
neither an IP nor a domain still round-trips as a domain), and a decoded IP is rendered the way
Go's ``net.IP.String`` does it, including IPv4-mapped IPv6 addresses shown as dotted IPv4.
Domain bytes are taken verbatim (no IDNA, no case folding); non-UTF-8 bytes survive as
surrogate escapes, so ``decode`` followed by ``encode`` gives the original bytes back.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from dataclasses import dataclass
from typing import Final, TypeAlias

from burrow.common.hostport import join_host_port, split_host_port
from burrow.proto.errors import LocalProtocolError, RemoteProtocolError

ATYP_IPV4: Final = 1
ATYP_DOMAIN: Final = 3
ATYP_IPV6: Final = 4

MAX_DOMAIN_LEN: Final = 255
MAX_PORT: Final = 65535

_IPV4_ZERO: Final = bytes(4)
_IPV6_ZERO: Final = bytes(16)
_V4_MAPPED_PREFIX: Final = bytes(10) + b"\xff\xff"
# strconv.Atoi's grammar: an optional sign and ASCII digits, nothing else (no "_", no spaces).
_GO_INT: Final = re.compile(r"[+-]?[0-9]+")
_GO_INT_MIN: Final = -(1 << 63)
_GO_INT_MAX: Final = (1 << 63) - 1

_IP: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address


def _go_port(text: str) -> int:
    """strconv.Atoi then uint16(): errors give 0, out-of-range values wrap like Go's conversion."""
    if not _GO_INT.fullmatch(text):
        return 0
    value = int(text)
    if not _GO_INT_MIN <= value <= _GO_INT_MAX:
        return 0
    return value & 0xFFFF


def split_hostport(text: str) -> tuple[str, int]:
    """Split ``host:port`` as gost's ParseFrom does: unsplittable → (text, 0); bad port → 0."""
    parts = split_host_port(text)
    if parts is None:
        return text, 0
    return parts[0], _go_port(parts[1])


def join_hostport(host: str, port: int) -> str:
    """``host:port``, with brackets around a host containing ':' (Go's JoinHostPort)."""
    return join_host_port(host, port)


@functools.lru_cache(maxsize=4096)  # the same peers and targets come back on every connection
def _parse_ip(host: str) -> _IP | None:
    """Go's net.ParseIP: dotted IPv4 or textual IPv6, no zone; None otherwise."""
    if "%" in host or not host:
        return None
    if ":" not in host and host.strip("0123456789."):
        return None  # neither IPv6 (a colon) nor dotted IPv4: skip ipaddress's costly ValueError
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _ipv4_bytes(ip: _IP | None) -> bytes | None:
    """Go's ``To4``: the 4 bytes of an IPv4 or IPv4-mapped IPv6 address, else None."""
    if isinstance(ip, ipaddress.IPv4Address):
        return ip.packed
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.packed
    return None


def _atyp_of(host: str) -> int:
    ip = _parse_ip(host)
    if ip is None:
        return ATYP_DOMAIN
    return ATYP_IPV4 if _ipv4_bytes(ip) is not None else ATYP_IPV6


def _render_ipv6(raw: bytes) -> str:
    # Go prints an IPv4-mapped IPv6 address as plain dotted IPv4; Python 3.11 would not.
    if raw[:12] == _V4_MAPPED_PREFIX:
        return str(ipaddress.IPv4Address(raw[12:]))
    return str(ipaddress.IPv6Address(raw))


@dataclass(frozen=True, slots=True)
class Address:
    """A host (IP text, domain, or empty) and port, with the ATYP used on the wire."""

    host: str
    port: int
    atyp: int

    @classmethod
    def from_hostport(cls, text: str, *, force_domain: bool = False) -> Address:
        """Parse ``host:port`` as gost's ParseFrom does; ``force_domain`` always uses ATYP 3."""
        host, port = split_hostport(text)
        return cls.of(host, port, force_domain=force_domain)

    @classmethod
    def of(cls, host: str, port: int, *, force_domain: bool = False) -> Address:
        """Address for ``host`` and ``port``, ATYP chosen from the host unless ``force_domain``."""
        return cls(host, port, ATYP_DOMAIN if force_domain else _atyp_of(host))

    def encode(self) -> bytes:
        """The DATA of an Addr feature; LocalProtocolError if it cannot be expressed."""
        if not 0 <= self.port <= MAX_PORT:
            raise LocalProtocolError(f"port out of range: {self.port}")
        port = self.port.to_bytes(2, "big")
        if self.atyp == ATYP_DOMAIN:
            try:
                raw = self.host.encode("utf-8", "surrogateescape")
            except UnicodeEncodeError:
                raise LocalProtocolError(f"host is not encodable: {self.host!r}") from None
            if len(raw) > MAX_DOMAIN_LEN:
                raise LocalProtocolError(f"domain longer than {MAX_DOMAIN_LEN} bytes")
            return bytes((ATYP_DOMAIN, len(raw))) + raw + port
        ip = _parse_ip(self.host)
        # An unparsable host under an IP ATYP becomes the zero address, as gost's encoder does.
        if self.atyp == ATYP_IPV4:
            return bytes((ATYP_IPV4,)) + (_ipv4_bytes(ip) or _IPV4_ZERO) + port
        if self.atyp == ATYP_IPV6:
            v4 = _ipv4_bytes(ip)
            if v4 is not None:
                raw = _V4_MAPPED_PREFIX + v4
            else:
                raw = ip.packed if ip is not None else _IPV6_ZERO
            return bytes((ATYP_IPV6,)) + raw + port
        raise LocalProtocolError(f"bad address type {self.atyp}")

    @classmethod
    def decode(cls, data: bytes | memoryview) -> Address:
        """Decode an Addr feature's DATA; bytes past the port are ignored."""
        raw = bytes(data)
        n = len(raw)
        if n < 4:
            raise RemoteProtocolError("address: short buffer")
        atyp = raw[0]
        if atyp == ATYP_IPV4:
            if n < 7:
                raise RemoteProtocolError("address: short IPv4 address")
            host = f"{raw[1]}.{raw[2]}.{raw[3]}.{raw[4]}"
            pos = 5
        elif atyp == ATYP_IPV6:
            if n < 19:
                raise RemoteProtocolError("address: short IPv6 address")
            host = _render_ipv6(raw[1:17])
            pos = 17
        elif atyp == ATYP_DOMAIN:
            alen = raw[1]
            if n < 4 + alen:
                raise RemoteProtocolError("address: short domain name")
            host = raw[2 : 2 + alen].decode("utf-8", "surrogateescape")
            pos = 2 + alen
        else:
            raise RemoteProtocolError(f"address: bad address type {atyp}")
        return cls(host, int.from_bytes(raw[pos : pos + 2], "big"), atyp)

    def hostport(self) -> str:
        """``host:port`` text (IPv6 in brackets)."""
        return join_hostport(self.host, self.port)
