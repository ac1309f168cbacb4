"""Relay request and response: the one message each side sends at the start of a connection.

Spec: docs/protocol.md, Relay header (features: relay_features.py, docs/protocol.md, Features).

    request                              response
    offset  size  field                  offset  size  field
    0       1     VER     0x01           0       1     VER     0x01
    1       1     CMD     flags|command  1       1     STATUS
    2       2     FEALEN  uint16 BE      2       2     FEALEN  uint16 BE
    4       var   FEATURES               4       var   FEATURES

Framing errors (a VER other than 1, seen on the very first byte; truncated or malformed features)
raise RemoteProtocolError with ``status=None``: gost closes such connections without a reply.
An unknown command or status is not a framing error; deciding what to answer is the handler's job.
Whatever follows the message on the connection (payload, smux frames, a peer's coalesced first
write) is kept apart, untouched, for the next layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Final, Literal

from burrow.common.ids import TunnelId
from burrow.proto.addr import Address
from burrow.proto.errors import LocalProtocolError, RemoteProtocolError
from burrow.proto.flags import CMD_FLAG_UDP
from burrow.proto.need import NEED_DATA, NeedData
from burrow.proto.relay_features import (
    MAX_FEATURES_LEN,
    MAX_REQUEST_FEATURES,
    MAX_REQUEST_FEATURES_LEN,
    AddrFeature,
    Feature,
    NetworkFeature,
    TunnelFeature,
    UserAuthFeature,
    decode_features,
    encode_features,
)

VERSION: Final = 1
HEADER_LEN: Final = 4
MAX_MESSAGE_LEN: Final = HEADER_LEN + MAX_FEATURES_LEN

CMD_MASK: Final = 0x0F


class Cmd(IntEnum):
    """Command in the low nibble of CMD."""

    CONNECT = 1
    BIND = 2
    ASSOCIATE = 3


class Status(IntEnum):
    """Response status codes (spec §3.1)."""

    OK = 0
    BAD_REQUEST = 1
    UNAUTHORIZED = 2
    FORBIDDEN = 3
    TIMEOUT = 4
    SERVICE_UNAVAILABLE = 5
    HOST_UNREACHABLE = 6
    NETWORK_UNREACHABLE = 7
    INTERNAL_SERVER_ERROR = 8


_STATUS_TEXT: Final[dict[int, str]] = {
    Status.OK: "OK",
    Status.BAD_REQUEST: "Bad Request",
    Status.UNAUTHORIZED: "Unauthorized",
    Status.FORBIDDEN: "Forbidden",
    Status.TIMEOUT: "Timeout",
    Status.SERVICE_UNAVAILABLE: "Service Unavailable",
    Status.HOST_UNREACHABLE: "Host Unreachable",
    Status.NETWORK_UNREACHABLE: "Network Unreachable",
    Status.INTERNAL_SERVER_ERROR: "Internal Server Error",
}


def status_text(code: int) -> str:
    """``"6 Host Unreachable"``-style text for logs and errors."""
    return f"{code} {_STATUS_TEXT.get(code, 'Unknown Status')}"


def _encode(first: int, second: int, features: tuple[Feature, ...], what: str) -> bytes:
    if not 0 <= second <= 0xFF:
        raise LocalProtocolError(f"{what} out of range: {second}")
    block = encode_features(features)
    return bytes((first, second)) + len(block).to_bytes(2, "big") + block


def _as_tuple(obj: RelayRequest | RelayResponse) -> None:
    # Accept any iterable from callers but store a tuple, so messages stay hashable and equal.
    if not isinstance(obj.features, tuple):
        object.__setattr__(obj, "features", tuple(obj.features))


def _addrs(features: tuple[Feature, ...]) -> list[Address]:
    return [f.addr for f in features if isinstance(f, AddrFeature)]


def _last_tunnel(features: tuple[Feature, ...]) -> TunnelFeature | None:
    for f in reversed(features):
        if isinstance(f, TunnelFeature):
            return f
    return None


@dataclass(frozen=True, slots=True)
class RelayRequest:
    """A client's request; ``cmd`` is the raw CMD byte, flags included."""

    cmd: int
    features: tuple[Feature, ...] = ()

    def __post_init__(self) -> None:
        _as_tuple(self)

    @property
    def command(self) -> int:
        """The command (``cmd & 0x0F``); compare with :class:`Cmd`."""
        return self.cmd & CMD_MASK

    @property
    def udp_flag(self) -> bool:
        """The deprecated FUDP bit (0x80) of CMD."""
        return bool(self.cmd & CMD_FLAG_UDP)

    @property
    def user_auth(self) -> UserAuthFeature | None:
        """The last UserAuth feature, if any."""
        for f in reversed(self.features):
            if isinstance(f, UserAuthFeature):
                return f
        return None

    @property
    def addrs(self) -> list[Address]:
        """Every Addr feature's address, in order."""
        return _addrs(self.features)

    @property
    def tunnel_id(self) -> TunnelId | None:
        """The last Tunnel feature's ID, if any."""
        f = _last_tunnel(self.features)
        return f.tunnel_id if f is not None else None

    @property
    def tunnel_len(self) -> int | None:
        """Wire LEN of that same Tunnel feature (16: relay dialect, 20: tunnel dialect)."""
        f = _last_tunnel(self.features)
        return f.length if f is not None else None

    @property
    def network(self) -> int | None:
        """The last Network feature's ID, if any."""
        for f in reversed(self.features):
            if isinstance(f, NetworkFeature):
                return f.network
        return None

    def encode(self) -> bytes:
        """Wire bytes; LocalProtocolError if CMD or the features cannot be expressed."""
        return _encode(VERSION, self.cmd, self.features, "command byte")


@dataclass(frozen=True, slots=True)
class RelayResponse:
    """A server's response; ``status`` is the raw STATUS byte."""

    status: int
    features: tuple[Feature, ...] = ()

    def __post_init__(self) -> None:
        _as_tuple(self)

    @property
    def addrs(self) -> list[Address]:
        """Every Addr feature's address, in order."""
        return _addrs(self.features)

    @property
    def connector_id(self) -> TunnelId | None:
        """The last Tunnel feature's ID (a connector ID in a BIND reply), if any."""
        f = _last_tunnel(self.features)
        return f.tunnel_id if f is not None else None

    def encode(self) -> bytes:
        """Wire bytes; LocalProtocolError if STATUS or the features cannot be expressed."""
        return _encode(VERSION, self.status, self.features, "status")


def _check_version(first: int) -> None:
    if first != VERSION:
        raise RemoteProtocolError(f"relay: bad version {first:#04x}")


def _parse(
    buf: bytes | bytearray | memoryview, capped: bool = False
) -> tuple[int, tuple[Feature, ...], int] | None:
    """(CMD or STATUS byte, features, bytes consumed), or None if more bytes are needed."""
    n = len(buf)
    if n == 0:
        return None
    _check_version(buf[0])
    if n < HEADER_LEN:
        return None
    fealen = int.from_bytes(buf[2:4], "big")
    # Decided from the header alone, so an oversized block is never buffered nor decoded.
    if capped and fealen > MAX_REQUEST_FEATURES_LEN:
        raise RemoteProtocolError(
            f"relay: features block of {fealen} bytes is over {MAX_REQUEST_FEATURES_LEN}",
            status=Status.BAD_REQUEST,
        )
    end = HEADER_LEN + fealen
    if n < end:
        return None
    block = memoryview(buf)[HEADER_LEN:end]
    features = decode_features(block, MAX_REQUEST_FEATURES if capped else None)
    return buf[1], tuple(features), end


def parse_request(
    buf: bytes | bytearray | memoryview, *, capped: bool = False
) -> tuple[RelayRequest, int] | None:
    """(request, bytes consumed) from the start of ``buf``, or None if more bytes are needed.

    ``capped`` (the server's view) refuses a request with more than MAX_REQUEST_FEATURES features
    or a block over MAX_REQUEST_FEATURES_LEN bytes: RemoteProtocolError with status BAD_REQUEST.
    """
    parsed = _parse(buf, capped)
    if parsed is None:
        return None
    return RelayRequest(parsed[0], parsed[1]), parsed[2]


def parse_response(buf: bytes | bytearray | memoryview) -> tuple[RelayResponse, int] | None:
    """(response, bytes consumed) from the start of ``buf``, or None if more bytes are needed."""
    parsed = _parse(buf)
    if parsed is None:
        return None
    return RelayResponse(parsed[0], parsed[1]), parsed[2]


class RelayReader:
    """Incremental reader of ONE request or response at the start of a connection.

    Feed bytes with :meth:`receive_data`; :meth:`next_event` returns NEED_DATA until the message
    is complete, then the message (again on every later call). Bytes past the message go to
    :meth:`trailing`. At most 4 + 65535 bytes are ever buffered for the message itself. After a
    RemoteProtocolError, every later call raises it again.
    """

    __slots__ = ("_buf", "_error", "_kind", "_msg", "_tail")

    def __init__(self, kind: Literal["request", "response"]) -> None:
        if kind not in ("request", "response"):
            raise ValueError(f"kind must be 'request' or 'response', not {kind!r}")
        self._kind: Literal["request", "response"] = kind
        self._buf = bytearray()
        self._tail = bytearray()
        self._msg: RelayRequest | RelayResponse | None = None
        self._error: RemoteProtocolError | None = None

    @property
    def buffered(self) -> int:
        """Bytes held for the message itself (never more than MAX_MESSAGE_LEN)."""
        return len(self._buf)

    def _wanted(self) -> int:
        """Bytes the message needs in total, as far as is known yet."""
        if len(self._buf) < HEADER_LEN:
            return HEADER_LEN
        return HEADER_LEN + int.from_bytes(self._buf[2:4], "big")

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Append bytes from the peer (an empty chunk is ignored)."""
        if self._error is not None:
            return
        if self._msg is not None:
            self._tail += data
            return
        buf = self._buf
        n = len(data)
        pos = 0
        # Take only what the message needs, learning FEALEN on the way; the rest is trailing.
        while pos < n:
            if buf and buf[0] != VERSION:
                return  # next_event reports it; nothing more is worth keeping
            wanted = self._wanted()
            if len(buf) >= wanted:
                break
            take = min(wanted - len(buf), n - pos)
            buf += data[pos : pos + take]
            pos += take
        if pos < n:
            self._tail += data[pos:]

    def next_event(self) -> RelayRequest | RelayResponse | NeedData:
        """The message once complete, else NEED_DATA; RemoteProtocolError on bad bytes."""
        if self._error is not None:
            raise self._error
        if self._msg is not None:
            return self._msg
        try:
            parsed = (parse_request if self._kind == "request" else parse_response)(self._buf)
        except RemoteProtocolError as exc:
            self._error = exc
            self._buf = bytearray()
            self._tail = bytearray()
            raise
        if parsed is None:
            return NEED_DATA
        self._msg = parsed[0]
        self._buf = bytearray()
        return self._msg

    def trailing(self) -> bytes:
        """Bytes received after the message (not consumed by this call); empty before it."""
        if self._msg is None:
            return b""
        return bytes(self._tail)
