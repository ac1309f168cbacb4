"""smux frame codec, wire-identical to xtaci/smux v1.5.x (protocol versions 1 and 2).

Spec: docs/protocol.md, smux frames.

    offset  size  field
    0       1     VER     1 or 2
    1       1     CMD     0=SYN 1=FIN 2=PSH 3=NOP 4=UPD
    2       2     LENGTH  uint16 little-endian
    4       4     SID     uint32 little-endian
    8       ...   DATA

    UPD body (8 bytes): consumed uint32 LE | window uint32 LE

How many DATA bytes follow a header depends on CMD, not only on LENGTH, because that is what
xtaci's receive loop does: PSH carries LENGTH bytes, UPD always exactly 8 (LENGTH is not looked
at), and SYN/FIN/NOP carry none: a non-zero LENGTH on them is ignored and the next header starts
right after the 8-byte header. A reader that trusted LENGTH there would desynchronise from gost.

Also here: the value types the session (``smux.py``) shares with its drivers: SmuxConfig, the
events, and the stream-level errors. Import them from ``burrow.proto.smux``, which re-exports all.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from burrow.proto.errors import LocalProtocolError, RemoteProtocolError
from burrow.proto.need import NEED_DATA, NeedData

SYN: Final = 0
FIN: Final = 1
PSH: Final = 2
NOP: Final = 3
UPD: Final = 4

HEADER_SIZE: Final = 8
UPD_SIZE: Final = 8
MAX_FRAME_SIZE: Final = 65535  # the LENGTH field is 16 bits
DEFAULT_FRAME_SIZE: Final = 32768
VERSIONS: Final = (1, 2)
CMD_NAMES: Final = ("SYN", "FIN", "PSH", "NOP", "UPD")

HEADER: Final = struct.Struct("<BBHI")
UPD_BODY: Final = struct.Struct("<II")
UPD_FRAME: Final = struct.Struct("<BBHIII")


class SmuxError(RemoteProtocolError):
    """The peer sent frames smux cannot accept: the whole session must be torn down."""


def payload_length(cmd: int, length: int) -> int:
    """DATA bytes that follow a header with this CMD and LENGTH, as xtaci reads them."""
    if cmd == PSH:
        return length
    if cmd == UPD:
        return UPD_SIZE
    if cmd == SYN or cmd == FIN or cmd == NOP:
        return 0
    raise SmuxError(f"smux: unknown command {cmd}")


def encode_header(version: int, cmd: int, length: int, sid: int) -> bytes:
    """The 8-byte frame header."""
    try:
        return HEADER.pack(version, cmd, length, sid)
    except struct.error as exc:
        raise LocalProtocolError(f"smux header out of range: {exc}") from None


def encode_frame(version: int, cmd: int, sid: int, data: bytes = b"") -> bytes:
    """A whole frame: header followed by ``data`` (one copy; use for small frames only)."""
    return encode_header(version, cmd, len(data), sid) + data


def encode_upd(version: int, sid: int, consumed: int, window: int) -> bytes:
    """A window update frame (LENGTH 8, as xtaci writes it)."""
    try:
        return UPD_FRAME.pack(version, UPD, UPD_SIZE, sid, consumed, window)
    except struct.error as exc:
        raise LocalProtocolError(f"smux UPD out of range: {exc}") from None


@dataclass(slots=True)
class Frame:
    """One decoded frame; ``data`` is the PSH payload or the 8-byte UPD body."""

    version: int
    cmd: int
    sid: int
    data: bytes | memoryview


class FrameReader:
    """Splits a byte stream into frames (tests and tools; the session parses in place)."""

    __slots__ = ("_buf", "_pos", "version")

    def __init__(self, version: int | None = None) -> None:
        if version is not None and version not in VERSIONS:
            raise ValueError(f"smux version must be 1 or 2, not {version}")
        self.version = version  # None until the first header when not given: then locked
        self._buf = bytearray()
        self._pos = 0

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as frames."""
        return len(self._buf) - self._pos

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Append bytes from the peer."""
        if self._pos:
            # Frames are returned as copies, so nothing can hold a view on the buffer here.
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    def next_frame(self) -> Frame | NeedData:
        """The next whole frame, or NEED_DATA; SmuxError on a bad version or command."""
        buf = self._buf
        pos = self._pos
        if len(buf) - pos < HEADER_SIZE:
            return NEED_DATA
        ver, cmd, length, sid = HEADER.unpack_from(buf, pos)
        if ver != self.version:
            if self.version is not None:
                raise SmuxError(f"smux: version {ver} frame in a version {self.version} stream")
            if ver not in VERSIONS:
                raise SmuxError(f"smux: unsupported version {ver}")
            self.version = ver
        start = pos + HEADER_SIZE
        end = start + payload_length(cmd, length)
        if end > len(buf):
            return NEED_DATA
        self._pos = end
        return Frame(ver, cmd, sid, bytes(buf[start:end]))


@dataclass(frozen=True, slots=True)
class SmuxConfig:
    """Session parameters; defaults are xtaci's (gost's relay dialect), see spec §3.2."""

    version: int = 1
    max_frame_size: int = DEFAULT_FRAME_SIZE
    max_receive_buffer: int = 4194304
    max_stream_buffer: int = 65536
    keepalive_interval: float = 10.0
    keepalive_timeout: float = 30.0
    keepalive_disabled: bool = False

    def __post_init__(self) -> None:
        # Same checks as xtaci's VerifyConfig, so a config gost refuses is refused here too.
        if self.version not in VERSIONS:
            raise ValueError(f"smux version must be 1 or 2, not {self.version}")
        if not 0 < self.max_frame_size <= MAX_FRAME_SIZE:
            raise ValueError(f"max_frame_size must be 1..{MAX_FRAME_SIZE}")
        if self.max_receive_buffer <= 0 or self.max_stream_buffer <= 0:
            raise ValueError("max_receive_buffer and max_stream_buffer must be positive")
        if self.max_stream_buffer > self.max_receive_buffer:
            raise ValueError("max_stream_buffer must not exceed max_receive_buffer")
        if self.max_stream_buffer > 0x7FFFFFFF:
            raise ValueError("max_stream_buffer must fit in an int32")
        if not self.keepalive_disabled:
            if self.keepalive_interval <= 0:
                raise ValueError("keepalive_interval must be positive")
            if self.keepalive_timeout < self.keepalive_interval:
                raise ValueError("keepalive_timeout must not be shorter than keepalive_interval")


@dataclass(slots=True)
class StreamOpened:
    """The peer opened stream ``sid`` (SYN for a new id)."""

    sid: int


@dataclass(slots=True)
class StreamData:
    """Payload for ``sid`` (never empty, maybe part of a PSH); valid until the next receive_data."""

    sid: int
    data: memoryview | bytes


@dataclass(slots=True)
class StreamEnded:
    """The peer closed ``sid`` (FIN): sending on it now fails; close_stream() sends our FIN."""

    sid: int


@dataclass(slots=True)
class StreamWritable:
    """v2: a peer UPD reopened the send window of ``sid`` after a short ``send``."""

    sid: int


@dataclass(slots=True)
class StreamRefused:
    """The peer's SYN for ``sid`` exceeded the stream limit: send ``fin`` back, nothing opened."""

    sid: int
    fin: bytes


SmuxEvent = StreamOpened | StreamData | StreamEnded | StreamWritable | StreamRefused


class ClosedStreamError(LocalProtocolError):
    """Sending on a stream that is unknown, closed by us, or ended by the peer."""


class FlowControlError(RemoteProtocolError):
    """v2: the peer acknowledged more than we sent (xtaci ErrConsumed); fails the write."""
