"""PROXY protocol v1 and v2 (HAProxy's proxy-protocol.txt), sans-IO: parse and build headers.

A load balancer in front of a server sends one header before the client's bytes, naming the
client's real address:

    v1:  "PROXY TCP4 203.0.113.7 192.0.2.1 51000 443\\r\\n"     (text, at most 107 bytes)
    v2:  0D 0A 0D 0A 00 0D 0A 51 55 49 54 0A | ver/cmd | fam/proto | len (2, BE) | addresses
         | TLVs (type 1, len 2, value; skipped)

:func:`detect` tells from the first bytes whether a header is there at all (PROXY is optional
per connection, as in gost); :func:`parse_proxy_header` decodes one, bounded by ``max_len``.
``LOCAL`` (v2) and ``UNKNOWN`` (v1) / ``AF_UNSPEC`` / ``AF_UNIX`` (v2) carry no usable source:
``src`` is None and the receiver keeps the connection's own address.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from typing import Final, Literal

from burrow.proto.errors import LocalProtocolError, RemoteProtocolError

V2_SIGNATURE: Final = b"\r\n\r\n\x00\r\nQUIT\n"
V1_PREFIX: Final = b"PROXY "
V1_MAX: Final = 107  # the spec's worst case, CRLF included
V2_FIXED: Final = 16
DEFAULT_MAX_LEN: Final = 2048  # v2 header + TLVs; haproxy itself keeps it well under this

_ADDR_LEN: Final = {1: 12, 2: 36, 3: 216}  # AF_INET, AF_INET6, AF_UNIX address block sizes
_CMD_LOCAL, _CMD_PROXY = 0x0, 0x1

HostPort = tuple[str, int]
Family = Literal["tcp4", "tcp6", "udp4", "udp6", "unix", "unknown"]


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    """One decoded header; ``src``/``dst`` are None when the header carries no address."""

    version: int  # 1 | 2
    local: bool  # v2 LOCAL: a health check by the proxy itself, use the real addresses
    family: Family
    src: HostPort | None
    dst: HostPort | None


def detect(buf: bytes | bytearray) -> bool | None:
    """True: a PROXY header starts here; False: it does not; None: too few bytes to tell."""
    for sig in (V1_PREFIX, V2_SIGNATURE):
        n = min(len(buf), len(sig))
        if buf[:n] == sig[:n]:
            if n == len(sig):
                return True
            return None
    return False


def parse_proxy_header(
    buf: bytes | bytearray, *, max_len: int = DEFAULT_MAX_LEN
) -> tuple[ProxyHeader, int] | None:
    """``(header, bytes used)`` or None for more bytes; RemoteProtocolError when malformed."""
    found = detect(buf)
    if found is None:
        return None
    if not found:
        raise RemoteProtocolError("not a PROXY protocol header")
    if buf.startswith(V2_SIGNATURE):
        return _parse_v2(buf, max_len)
    return _parse_v1(buf)


def _parse_v1(buf: bytes | bytearray) -> tuple[ProxyHeader, int] | None:
    end = buf.find(b"\r\n", 0, V1_MAX)
    if end < 0:
        if len(buf) >= V1_MAX:
            raise RemoteProtocolError(f"PROXY v1 line longer than {V1_MAX} bytes")
        if b"\n" in buf:
            raise RemoteProtocolError("PROXY v1 line not ended by CRLF")
        return None
    try:
        line = bytes(buf[:end]).decode("ascii")
    except UnicodeDecodeError:
        raise RemoteProtocolError("PROXY v1 line is not ASCII") from None
    parts = line.split(" ")
    used = end + 2
    if len(parts) >= 2 and parts[1] == "UNKNOWN":
        # The rest of an UNKNOWN line is to be ignored (spec 2.1).
        return ProxyHeader(1, False, "unknown", None, None), used
    if len(parts) != 6 or parts[1] not in ("TCP4", "TCP6"):
        raise RemoteProtocolError(f"bad PROXY v1 line {line[:60]!r}")
    version = 4 if parts[1] == "TCP4" else 6
    src = (_v1_ip(parts[2], version), _v1_port(parts[4]))
    dst = (_v1_ip(parts[3], version), _v1_port(parts[5]))
    family: Family = "tcp4" if version == 4 else "tcp6"
    return ProxyHeader(1, False, family, src, dst), used


def _v1_ip(text: str, version: int) -> str:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        raise RemoteProtocolError(f"bad PROXY v1 address {text[:45]!r}") from None
    if ip.version != version:
        raise RemoteProtocolError(f"PROXY v1 address {text!r} is not IPv{version}")
    return _v6(ip.packed) if ip.version == 6 else str(ip)


def _v1_port(text: str) -> int:
    # Decimal, no sign, no leading zero (spec 2.1); at most 65535.
    if not text.isdigit() or not text.isascii() or (len(text) > 1 and text[0] == "0"):
        raise RemoteProtocolError(f"bad PROXY v1 port {text[:8]!r}")
    port = int(text)
    if port > 65535:
        raise RemoteProtocolError(f"PROXY v1 port {port} out of range")
    return port


def _parse_v2(buf: bytes | bytearray, max_len: int) -> tuple[ProxyHeader, int] | None:
    if len(buf) < V2_FIXED:
        return None
    ver_cmd, fam, length = buf[12], buf[13], struct.unpack_from("!H", buf, 14)[0]
    if ver_cmd >> 4 != 2:
        raise RemoteProtocolError(f"PROXY v2 version nibble {ver_cmd >> 4} is not 2")
    cmd = ver_cmd & 0x0F
    if cmd not in (_CMD_LOCAL, _CMD_PROXY):
        raise RemoteProtocolError(f"PROXY v2 command {cmd} is neither LOCAL nor PROXY")
    total = V2_FIXED + length
    if total > max_len:
        raise RemoteProtocolError(f"PROXY v2 header of {total} bytes exceeds {max_len}")
    af, proto = fam >> 4, fam & 0x0F
    if af > 3 or proto > 2:
        raise RemoteProtocolError(f"PROXY v2 family byte {fam:#04x} is not defined")
    if len(buf) < total:
        return None
    need = _ADDR_LEN.get(af, 0)
    if length < need:
        raise RemoteProtocolError(f"PROXY v2 length {length} too short for its address family")
    body = bytes(buf[V2_FIXED:total])
    _check_tlvs(body[need:])
    if cmd == _CMD_LOCAL:
        # LOCAL: the proxy's own connection (health check); addresses, if any, are ignored.
        return ProxyHeader(2, True, "unknown", None, None), total
    stream = proto != 2
    if af == 1:
        src = (str(ipaddress.IPv4Address(body[0:4])), struct.unpack_from("!H", body, 8)[0])
        dst = (str(ipaddress.IPv4Address(body[4:8])), struct.unpack_from("!H", body, 10)[0])
        return ProxyHeader(2, False, "tcp4" if stream else "udp4", src, dst), total
    if af == 2:
        src = (_v6(body[0:16]), struct.unpack_from("!H", body, 32)[0])
        dst = (_v6(body[16:32]), struct.unpack_from("!H", body, 34)[0])
        return ProxyHeader(2, False, "tcp6" if stream else "udp6", src, dst), total
    return ProxyHeader(2, False, "unix" if af == 3 else "unknown", None, None), total


def _v6(raw: bytes) -> str:
    ip = ipaddress.IPv6Address(raw)
    mapped = ip.ipv4_mapped
    return str(mapped) if mapped is not None else str(ip)


def _check_tlvs(data: bytes) -> None:
    """TLVs are skipped, but they must tile the rest of the header exactly."""
    pos = 0
    while pos < len(data):
        if len(data) - pos < 3:
            raise RemoteProtocolError("PROXY v2 TLV truncated")
        (n,) = struct.unpack_from("!H", data, pos + 1)
        pos += 3 + n
        if pos > len(data):
            raise RemoteProtocolError("PROXY v2 TLV runs past the header")


def _family(src: HostPort, dst: HostPort) -> tuple[int, bytes, bytes]:
    """Address version and packed addresses; a v4/v6 mix is sent as IPv6 (v4-mapped)."""
    try:
        a, b = ipaddress.ip_address(src[0]), ipaddress.ip_address(dst[0])
    except ValueError as exc:
        raise LocalProtocolError(f"PROXY header needs IP addresses: {exc}") from None
    if a.version == b.version:
        return a.version, a.packed, b.packed
    a6 = a if a.version == 6 else ipaddress.IPv6Address(f"::ffff:{a}")
    b6 = b if b.version == 6 else ipaddress.IPv6Address(f"::ffff:{b}")
    return 6, a6.packed, b6.packed


def build_v1(src: HostPort | None, dst: HostPort | None) -> bytes:
    """A v1 line; ``PROXY UNKNOWN`` when either address is missing."""
    if src is None or dst is None:
        return b"PROXY UNKNOWN\r\n"
    version, a, b = _family(src, dst)
    if version == 4:
        s, d = str(ipaddress.IPv4Address(a)), str(ipaddress.IPv4Address(b))
    else:
        s, d = str(ipaddress.IPv6Address(a)), str(ipaddress.IPv6Address(b))
    return f"PROXY TCP{version} {s} {d} {src[1]} {dst[1]}\r\n".encode("ascii")


def build_v2(src: HostPort | None, dst: HostPort | None, *, local: bool = False) -> bytes:
    """A v2 header (TCP over IPv4/IPv6); AF_UNSPEC when an address is missing, LOCAL if asked."""
    cmd = _CMD_LOCAL if local else _CMD_PROXY
    if src is None or dst is None or local:
        return V2_SIGNATURE + bytes([0x20 | cmd, 0x00]) + b"\x00\x00"
    version, a, b = _family(src, dst)
    fam = 0x11 if version == 4 else 0x21
    body = a + b + struct.pack("!HH", src[1], dst[1])
    return V2_SIGNATURE + bytes([0x20 | cmd, fam]) + struct.pack("!H", len(body)) + body


def build(version: int, src: HostPort | None, dst: HostPort | None) -> bytes:
    """The header of ``version`` (1 or 2)."""
    if version == 1:
        return build_v1(src, dst)
    if version == 2:
        return build_v2(src, dst)
    raise LocalProtocolError(f"PROXY protocol version {version} does not exist")
