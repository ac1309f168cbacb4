"""Per-stream smux state (sans-IO): byte counters, the peer's v2 window, and PSH framing.

``SmuxSession`` (in ``smux``) keeps one ``StreamState`` per open stream and asks it how much it
may send, how to frame it, and when a consumption report (UPD) is due. Byte counts are plain
ints; wire values are taken mod 2**32 and compared as int32, as xtaci/smux does.
"""

from __future__ import annotations

from typing import Final

from burrow.proto.smux_frame import HEADER, PSH

INITIAL_PEER_WINDOW: Final = 262144  # xtaci's initialPeerWindow: assumed until the first UPD
UNLIMITED_WINDOW: Final = 1 << 62  # send_window() in v1, which has no per-stream window
U32: Final = 0xFFFFFFFF


def int32(value: int) -> int:
    """``value`` mod 2**32 read as a signed 32-bit int (xtaci's window arithmetic)."""
    value &= U32
    return value - (1 << 32) if value & 0x80000000 else value


class StreamState:
    """Per-stream counters; byte counts are plain ints, wire values are taken mod 2**32."""

    __slots__ = (
        "blocked",
        "consumed",
        "incr",
        "peer_consumed",
        "peer_fin",
        "peer_window",
        "received",
        "sent",
    )

    def __init__(self) -> None:
        self.received = 0  # payload bytes delivered in StreamData events
        self.consumed = 0  # of which the application has reported consumed()
        self.incr = 0  # consumed since the last UPD we sent
        self.sent = 0  # payload bytes we framed
        self.peer_consumed = 0  # from the peer's last UPD (uint32)
        self.peer_window = INITIAL_PEER_WINDOW  # from the peer's last UPD (uint32)
        self.peer_fin = False
        self.blocked = False  # a send() was cut short by the v2 window

    def inflight(self) -> int:
        """Bytes sent the peer has not reported consumed (negative: the peer over-reported)."""
        return int32(self.sent - self.peer_consumed)

    def peer_update(self, consumed: int, window: int, v2: bool) -> bool:
        """Take the peer's UPD; True when a blocked v2 stream may send again."""
        self.peer_consumed = consumed
        self.peer_window = window
        if self.blocked and v2:
            inflight = int32(self.sent - consumed)
            if inflight < 0 or int32(window) - inflight > 0:
                self.blocked = False
                return True
        return False

    def report_due(self, n: int, half_buffer: int) -> int:
        """v2, after ``n`` more bytes consumed: the uint32 count to put in a UPD, or 0 for none.

        xtaci tryReadv2: report after the first read, then every max_stream_buffer/2."""
        self.incr += n
        num_read = self.consumed & U32
        if self.incr >= half_buffer or num_read == n:
            self.incr = 0
            return num_read
        return 0


def frame_psh(
    version: int, sid: int, data: bytes | memoryview, allowed: int, frame_size: int
) -> list[bytes | memoryview]:
    """PSH frames for the first ``allowed`` bytes of ``data``, as buffers for writelines."""
    fs = frame_size
    if allowed <= fs:
        if allowed == len(data) and type(data) is bytes:
            return [HEADER.pack(version, PSH, allowed, sid), data]
        mv = data if type(data) is memoryview else memoryview(data)
        return [HEADER.pack(version, PSH, allowed, sid), mv[:allowed]]
    mv = data if type(data) is memoryview else memoryview(data)
    full = HEADER.pack(version, PSH, fs, sid)
    bufs: list[bytes | memoryview] = []
    off = 0
    last = allowed - fs
    while off < last:
        bufs.append(full)
        bufs.append(mv[off : off + fs])
        off += fs
    bufs.append(full if allowed - off == fs else HEADER.pack(version, PSH, allowed - off, sid))
    bufs.append(mv[off:allowed])
    return bufs
