"""Tunnel and connector identifiers (docs/protocol.md, Features (Tunnel)).

A tunnel ID is a UUID. On the wire it is 16 bytes (relay dialect) or 20 bytes (tunnel dialect:
UUID, flag byte, two reserved bytes, weight). Equality only ever looks at the 16 UUID bytes.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

from burrow.proto.flags import TUNNEL_ID_FLAG_PRIVATE, TUNNEL_ID_FLAG_UDP


class InvalidIdError(ValueError):
    """Text that is not a UUID in any form gost accepts."""


def parse_uuid(text: str) -> bytes:
    """Parse a UUID the way gost's (Google) parser does: 36-char, ``urn:uuid:``, braces, 32 hex.

    Returns the 16 bytes; raises :class:`InvalidIdError`.
    """
    s = text.strip()
    if s.lower().startswith("urn:uuid:"):
        s = s[9:]
    if len(s) == 38 and s[0] == "{" and s[-1] == "}":
        s = s[1:-1]
    if len(s) == 36:
        if s[8] != "-" or s[13] != "-" or s[18] != "-" or s[23] != "-":
            raise InvalidIdError(f"not a UUID: {text!r}")
        s = s.replace("-", "")
    if len(s) != 32:
        raise InvalidIdError(f"not a UUID: {text!r}")
    try:
        return bytes.fromhex(s)
    except ValueError:
        raise InvalidIdError(f"not a UUID: {text!r}") from None


@dataclass(frozen=True, slots=True)
class TunnelId:
    """A tunnel ID: 16 UUID bytes plus the tunnel-dialect flag and weight bytes."""

    uuid: bytes
    flag: int = 0
    weight: int = 0

    @classmethod
    def parse(cls, text: str) -> TunnelId:
        """Parse textual UUID forms; raises :class:`InvalidIdError`."""
        return cls(parse_uuid(text))

    @classmethod
    def from_wire(cls, data: bytes) -> TunnelId:
        """Decode a Tunnel feature's DATA (>= 16 bytes; bytes past 20 ignored)."""
        raw = bytes(data[:20]).ljust(20, b"\0")
        return cls(raw[:16], raw[16], raw[19])

    def to_wire(self, length: int = 16) -> bytes:
        """Encode as 16 (relay dialect) or 20 (tunnel dialect) bytes."""
        if length == 16:
            return self.uuid
        return self.uuid + bytes((self.flag & 0xFF, 0, 0, self.weight & 0xFF))

    @property
    def is_zero(self) -> bool:
        """True for the all-zero ID (flags ignored)."""
        return not any(self.uuid)

    @property
    def text(self) -> str:
        """Canonical lower-case 8-4-4-4-12 form."""
        return _uuid_text(self.uuid)

    @property
    def private(self) -> bool:
        return bool(self.flag & TUNNEL_ID_FLAG_PRIVATE)

    @property
    def udp(self) -> bool:
        return bool(self.flag & TUNNEL_ID_FLAG_UDP)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, TunnelId):
            return self.uuid == other.uuid
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.uuid)

    def __str__(self) -> str:
        return self.text


ConnectorId = TunnelId


@functools.lru_cache(maxsize=1024)  # hot tunnel IDs are looked up on every connection
def _uuid_text(raw: bytes) -> str:
    # Thousands of tunnels overflow the cache: hex slicing is ~5x cheaper than uuid.UUID.
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


_RANDOM_BATCH = 256  # IDs made per urandom() call
_random_ids: list[bytes] = []


def random_uuid() -> bytes:
    """16 random bytes of a version-4 UUID, as ``uuid.uuid4().bytes`` (a connector ID).

    Made 256 at a time from one urandom() call and without uuid.UUID objects: a burst of BINDs
    needs one each. A forked child starts with none of its parent's (no shared IDs).
    """
    if not _random_ids:
        raw = bytearray(os.urandom(16 * _RANDOM_BATCH))
        raw[6::16] = bytes((b & 0x0F) | 0x40 for b in raw[6::16])  # version 4
        raw[8::16] = bytes((b & 0x3F) | 0x80 for b in raw[8::16])  # RFC 4122 variant
        _random_ids.extend(bytes(raw[i : i + 16]) for i in range(0, len(raw), 16))
    return _random_ids.pop()


os.register_at_fork(after_in_child=_random_ids.clear)
