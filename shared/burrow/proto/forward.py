"""The cluster forward: what one Burrow node sends another inside the authenticated hop.

Sans-IO. A node with no connector of its own for a tunnel dials a node that has one (its
``advertise`` address, the relay port) over mutual TLS whose certificates only holders of the
cluster secret can make (burrow.net.cluster_tls), then sends::

    b"BFWD" | u16 length (big endian) | msgpack(ForwardHeader) | the bytes already read

and the receiver answers one byte, ``ACCEPTED`` (a local connector takes it; the stream's own
bytes follow) or ``REFUSED`` (none here; it closes and the sender tries the next node). A forward
is routed by the receiver to its own connectors only, never forwarded again: the hop limit is
one, by construction (docs/cluster.md, Forwarding).

Also here: the key seed both ends derive from the secret (HKDF-SHA256, RFC 5869) and the
rewrites of a gost-style forward (plain TCP replay, ``Gost-Forwarded-Node`` on HTTP).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Final

import msgspec

from .errors import ProtocolError

MAGIC: Final = b"BFWD"
MAX_HEADER: Final = 4096  # names, addresses and a tunnel ID: far below this
ACCEPTED: Final = b"\x00"
REFUSED: Final = b"\x01"
VERSION: Final = 1
# SNI and SAN of the cluster certificate: the same on every node (the key proves membership).
CLUSTER_NAME: Final = "burrow-cluster"
GOST_FORWARDED_NODE: Final = b"Gost-Forwarded-Node"

_HKDF_SALT: Final = b"burrow cluster v1"
_HKDF_INFO: Final = b"burrow forward ed25519 key"


class ForwardHeader(msgspec.Struct, frozen=True, kw_only=True):
    """Who forwards what: enough for the receiver to rebuild the routing decision."""

    v: int = VERSION
    node: str  # the sending node (logs; the receiver never routes by it)
    kind: str  # "entrypoint" | "visitor"
    tunnel: str  # tunnel ID text
    network: str  # "tcp" | "udp"
    peer: str  # the visitor's "ip:port" as the first node saw it
    target: str = ""  # "host:port" of the stream header's Addr #2 ("" for none)
    reply: int = -1  # relay status to send the visitor first (-1: an entry-point request)


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(ForwardHeader)


def encode_forward(header: ForwardHeader, prefix: bytes = b"") -> bytes:
    """The bytes that open a forward: magic, length, header, then ``prefix``."""
    body = _encoder.encode(header)
    if len(body) > MAX_HEADER:
        raise ProtocolError(f"forward header of {len(body)} bytes exceeds {MAX_HEADER}")
    return MAGIC + len(body).to_bytes(2, "big") + body + prefix


def decode_forward(buf: bytes | bytearray) -> tuple[ForwardHeader, int] | None:
    """``(header, bytes used)`` from the start of ``buf``; None: need more; ProtocolError: bad."""
    if len(buf) < len(MAGIC):
        if not MAGIC.startswith(bytes(buf)):
            raise ProtocolError("not a cluster forward (bad magic)")
        return None
    if bytes(buf[:4]) != MAGIC:
        raise ProtocolError("not a cluster forward (bad magic)")
    if len(buf) < 6:
        return None
    size = int.from_bytes(buf[4:6], "big")
    if size > MAX_HEADER:
        raise ProtocolError(f"forward header of {size} bytes exceeds {MAX_HEADER}")
    if len(buf) < 6 + size:
        return None
    try:
        header = _decoder.decode(bytes(buf[6 : 6 + size]))
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ProtocolError(f"bad forward header: {exc}") from exc
    if header.v != VERSION:
        raise ProtocolError(f"forward header version {header.v}, this node speaks {VERSION}")
    if header.kind not in ("entrypoint", "visitor") or header.network not in ("tcp", "udp"):
        raise ProtocolError(f"forward of kind {header.kind!r}/{header.network!r} is not routable")
    return header, 6 + size


def hkdf_sha256(secret: bytes, salt: bytes, info: bytes, length: int = 32) -> bytes:
    """RFC 5869 HKDF with SHA-256 (extract, then expand to ``length`` bytes)."""
    prk = hmac.new(salt, secret, hashlib.sha256).digest()
    out, block, i = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([i]), hashlib.sha256).digest()
        out += block
        i += 1
    return out[:length]


def cluster_key_seed(secret: str) -> bytes:
    """The 32-byte Ed25519 private key every member derives from the cluster secret."""
    return hkdf_sha256(secret.encode(), _HKDF_SALT, _HKDF_INFO)


_HEADER_LINE: Final = re.compile(
    rb"\r\n" + GOST_FORWARDED_NODE + rb"[ \t]*:[^\r\n]*", re.IGNORECASE
)


def with_forwarded_node(prefix: bytes, node: str) -> bytes:
    """An HTTP head with ``Gost-Forwarded-Node: node`` as gost nodes add it (others removed).

    Not HTTP (no request line end in ``prefix``): returned unchanged.
    """
    end = prefix.find(b"\r\n")
    if end < 0:
        return prefix
    head_end = prefix.find(b"\r\n\r\n")
    head = prefix if head_end < 0 else prefix[: head_end + 2]
    rest = b"" if head_end < 0 else prefix[head_end + 2 :]
    head = _HEADER_LINE.sub(b"", head)
    end = head.find(b"\r\n")
    line = b"\r\n" + GOST_FORWARDED_NODE + b": " + node.encode()
    return head[:end] + line + head[end:] + rest


def forwarded_node(prefix: bytes) -> str | None:
    """The ``Gost-Forwarded-Node`` of an HTTP head, None without one."""
    head_end = prefix.find(b"\r\n\r\n")
    m = _HEADER_LINE.search(prefix if head_end < 0 else prefix[: head_end + 2])
    if m is None:
        return None
    return m.group(0).split(b":", 1)[1].strip().decode("latin-1")
