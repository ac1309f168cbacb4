"""Relay feature container (TLV) and the feature types Burrow understands.

Spec: docs/protocol.md, Features.

    offset  size  field
    0       1     TYPE   1 UserAuth, 2 Addr, 3 Tunnel, 4 Network
    1       2     LEN    length of DATA, uint16 big-endian
    3       LEN   DATA

    UserAuth DATA: ULEN(1) UNAME(ULEN) PLEN(1) PASSWD(PLEN)
    Addr DATA:     see addr.py
    Tunnel DATA:   UUID(16) [FLAG(1) RSV(2) WEIGHT(1)]   16 bytes (relay dialect) or 20 (tunnel)
    Network DATA:  network ID, uint16 big-endian

Deliberate deviation from gost (spec §6.6): a feature TYPE we do not know is kept as an
:class:`UnknownFeature` instead of failing the whole message, so a newer client that adds, say,
relay v0.7's Metadata feature can still register. Burrow never sends unknown types itself.

Decoding ignores DATA bytes beyond what a type needs (as gost does), so ``encode(decode(x)) == x``
holds for canonical encodings only. A DATA too short for its type fails the whole block.
User names, passwords and domains are bytes on the wire; they are decoded as UTF-8 with
"surrogateescape" so that any bytes come back out unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar, Final, TypeAlias

from burrow.common.ids import TunnelId
from burrow.proto.addr import Address
from burrow.proto.errors import LocalProtocolError, RemoteProtocolError

MAX_FEATURES_LEN: Final = 65535
MAX_AUTH_FIELD_LEN: Final = 255
# Caps on a request the server accepts (the codec itself takes any valid block). Real gost sends
# at most 4 features in 59 bytes (tests/vectors, both dialects: Network + 2 Addr + Tunnel).
# Headroom: UserAuth (3 + 2 + 2*255) + 2 Addr (3 + 1 + 1 + 255 + 2 each) + Tunnel (3 + 20)
# + Network (3 + 2) = 1067 bytes in 5 features, plus one unknown/metadata feature of up to
# ~1 KB. Beyond that a request is an attack: decoding 64 KiB of features costs 35-110x a real one.
MAX_REQUEST_FEATURES: Final = 8
MAX_REQUEST_FEATURES_LEN: Final = 2048
TUNNEL_ID_MIN_LEN: Final = 16
TUNNEL_ID_FULL_LEN: Final = 20
FEATURE_HEADER_LEN: Final = 3


class FeatureType(IntEnum):
    """Feature TYPE codes."""

    USER_AUTH = 1
    ADDR = 2
    TUNNEL = 3
    NETWORK = 4


NETWORK_TCP: Final = 0x0000
NETWORK_UDP: Final = 0x0001
NETWORK_IP: Final = 0x0002
NETWORK_UNIX: Final = 0x0010
NETWORK_SERIAL: Final = 0x0011
NETWORK_NAMES: Final[dict[int, str]] = {
    NETWORK_TCP: "tcp",
    NETWORK_UDP: "udp",
    NETWORK_IP: "ip",
    NETWORK_UNIX: "unix",
    NETWORK_SERIAL: "serial",
}


def network_name(network: int) -> str:
    """Name of a network ID; unknown IDs read as "tcp", as in gost."""
    return NETWORK_NAMES.get(network, "tcp")


def _text_bytes(text: str, what: str) -> bytes:
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raise LocalProtocolError(f"{what} is not encodable: {text!r}") from None
    if len(raw) > MAX_AUTH_FIELD_LEN:
        raise LocalProtocolError(f"{what} longer than {MAX_AUTH_FIELD_LEN} bytes")
    return raw


@dataclass(frozen=True, slots=True)
class UserAuthFeature:
    """Credentials (type 1)."""

    type: ClassVar[int] = FeatureType.USER_AUTH
    username: str
    password: str

    def encode_data(self) -> bytes:
        """DATA bytes; LocalProtocolError if a field exceeds 255 bytes."""
        user = _text_bytes(self.username, "username")
        password = _text_bytes(self.password, "password")
        return bytes((len(user),)) + user + bytes((len(password),)) + password

    @classmethod
    def decode_data(cls, data: bytes) -> UserAuthFeature:
        """Parse DATA; RemoteProtocolError when ULEN or PLEN run past it."""
        if len(data) < 2:
            raise RemoteProtocolError("user auth feature: short buffer")
        ulen = data[0]
        if len(data) < 2 + ulen:
            raise RemoteProtocolError("user auth feature: short buffer")
        plen = data[1 + ulen]
        if len(data) < 2 + ulen + plen:
            raise RemoteProtocolError("user auth feature: short buffer")
        return cls(
            data[1 : 1 + ulen].decode("utf-8", "surrogateescape"),
            data[2 + ulen : 2 + ulen + plen].decode("utf-8", "surrogateescape"),
        )


@dataclass(frozen=True, slots=True)
class AddrFeature:
    """An address (type 2); what each one means depends on its position (spec §6.2)."""

    type: ClassVar[int] = FeatureType.ADDR
    addr: Address

    def encode_data(self) -> bytes:
        """DATA bytes."""
        return self.addr.encode()

    @classmethod
    def decode_data(cls, data: bytes) -> AddrFeature:
        """Parse DATA."""
        return cls(Address.decode(data))


@dataclass(frozen=True, slots=True)
class TunnelFeature:
    """Tunnel ID in a request, connector ID in a response (type 3).

    ``length`` is the wire LEN: 16 (relay dialect) or 20 (tunnel dialect). A decoded LEN of
    17..19 or above 20 is kept as received (it tells which peer sent it) and re-encodes as 20.
    """

    type: ClassVar[int] = FeatureType.TUNNEL
    tunnel_id: TunnelId
    length: int = TUNNEL_ID_MIN_LEN

    def encode_data(self) -> bytes:
        """DATA bytes: 16 if ``length`` is 16, else the full 20."""
        if self.length == TUNNEL_ID_MIN_LEN:
            return self.tunnel_id.to_wire(TUNNEL_ID_MIN_LEN)
        return self.tunnel_id.to_wire(TUNNEL_ID_FULL_LEN)

    @classmethod
    def decode_data(cls, data: bytes) -> TunnelFeature:
        """Parse DATA (>= 16 bytes)."""
        if len(data) < TUNNEL_ID_MIN_LEN:
            raise RemoteProtocolError(f"tunnel feature: {len(data)} bytes, need 16")
        return cls(TunnelId.from_wire(data), len(data))


@dataclass(frozen=True, slots=True)
class NetworkFeature:
    """Network of the request (type 4): NETWORK_TCP, NETWORK_UDP, ..."""

    type: ClassVar[int] = FeatureType.NETWORK
    network: int

    def encode_data(self) -> bytes:
        """DATA bytes."""
        if not 0 <= self.network <= 0xFFFF:
            raise LocalProtocolError(f"network ID out of range: {self.network}")
        return self.network.to_bytes(2, "big")

    @classmethod
    def decode_data(cls, data: bytes) -> NetworkFeature:
        """Parse DATA (>= 2 bytes)."""
        if len(data) < 2:
            raise RemoteProtocolError("network feature: short buffer")
        return cls(int.from_bytes(data[:2], "big"))

    @property
    def name(self) -> str:
        """ "tcp", "udp", ... (unknown IDs read as "tcp")."""
        return network_name(self.network)


@dataclass(frozen=True, slots=True)
class UnknownFeature:
    """A feature TYPE Burrow does not know, kept verbatim (deviation from gost, see module doc)."""

    type: int
    data: bytes

    def encode_data(self) -> bytes:
        """DATA bytes, as received."""
        return self.data


Feature: TypeAlias = UserAuthFeature | AddrFeature | TunnelFeature | NetworkFeature | UnknownFeature

_DECODERS: Final[dict[int, Callable[[bytes], Feature]]] = {
    FeatureType.USER_AUTH: UserAuthFeature.decode_data,
    FeatureType.ADDR: AddrFeature.decode_data,
    FeatureType.TUNNEL: TunnelFeature.decode_data,
    FeatureType.NETWORK: NetworkFeature.decode_data,
}


def encode_features(features: Iterable[Feature]) -> bytes:
    """The FEATURES block, in the given order; LocalProtocolError if it exceeds 65535 bytes."""
    parts: list[bytes] = []
    total = 0
    for feature in features:
        if not 0 <= feature.type <= 0xFF:
            raise LocalProtocolError(f"feature type out of range: {feature.type}")
        data = feature.encode_data()
        total += FEATURE_HEADER_LEN + len(data)
        if total > MAX_FEATURES_LEN:
            raise LocalProtocolError(f"features longer than {MAX_FEATURES_LEN} bytes")
        parts.append(bytes((feature.type,)) + len(data).to_bytes(2, "big"))
        parts.append(data)
    return b"".join(parts)


def decode_features(block: bytes | memoryview, max_count: int | None = None) -> list[Feature]:
    """Every feature of a FEATURES block, in order; RemoteProtocolError on any malformed one.

    With ``max_count``, a block holding more features raises RemoteProtocolError (status set by
    the caller) as soon as the one too many is seen, before it is decoded.
    """
    # One copy of the (<= 64 KiB) block: the decoded features then hold no view on the caller's
    # buffer, which could otherwise stay locked against resizing by a traceback.
    raw = bytes(block)
    end = len(raw)
    pos = 0
    out: list[Feature] = []
    while pos < end:
        if end - pos < FEATURE_HEADER_LEN:
            raise RemoteProtocolError("truncated feature header")
        ftype = raw[pos]
        length = int.from_bytes(raw[pos + 1 : pos + 3], "big")
        pos += FEATURE_HEADER_LEN
        if length > end - pos:
            raise RemoteProtocolError(f"feature type {ftype}: LEN {length} runs past the block")
        if max_count is not None and len(out) >= max_count:
            # status 1 is Bad Request (relay.Status, which imports this module)
            raise RemoteProtocolError(f"relay: more than {max_count} features", status=1)
        data = raw[pos : pos + length]
        pos += length
        decoder = _DECODERS.get(ftype)
        out.append(decoder(data) if decoder is not None else UnknownFeature(ftype, data))
    return out
