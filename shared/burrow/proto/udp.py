"""UDP datagrams carried over a byte stream (tunnel streams, relay CONNECT with FUDP).

Spec: docs/protocol.md, UDP framing.

    offset  size  field
    0       2     LEN      uint16 big-endian, 0..65535
    2       LEN   PAYLOAD  one datagram

The same framing in both directions and both dialects. Any byte sequence is valid framing, so
the reader never fails: it only waits for more bytes.
"""

from __future__ import annotations

from typing import Final

from burrow.proto.errors import LocalProtocolError
from burrow.proto.need import NEED_DATA, NeedData

MAX_DATAGRAM: Final = 65535
PREFIX_LEN: Final = 2


def frame_header(length: int) -> bytes:
    """The 2-byte length prefix alone (send it and the payload with ``writelines``)."""
    if not 0 <= length <= MAX_DATAGRAM:
        raise LocalProtocolError(f"datagram of {length} bytes too big (max {MAX_DATAGRAM})")
    return length.to_bytes(PREFIX_LEN, "big")


def frame_datagram(payload: bytes | memoryview) -> bytes:
    """Length prefix followed by ``payload``; LocalProtocolError above 65535 bytes."""
    return frame_header(len(payload)) + payload


class DatagramReader:
    """Reassembles datagrams from a byte stream; prefix and payload may come in separate chunks."""

    __slots__ = ("_buf", "_pos")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0  # start of the first unread byte; consumed bytes are dropped lazily

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as datagrams."""
        return len(self._buf) - self._pos

    def receive_data(self, data: bytes | memoryview) -> None:
        """Append bytes from the stream."""
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    def next_datagram(self) -> bytes | NeedData:
        """The next whole datagram (a copy), or NEED_DATA."""
        buf = self._buf
        start = self._pos + PREFIX_LEN
        if len(buf) < start:
            return NEED_DATA
        end = start + int.from_bytes(buf[self._pos : start], "big")
        if len(buf) < end:
            return NEED_DATA
        with memoryview(buf) as view:
            datagram = bytes(view[start:end])
        if end == len(buf):
            buf.clear()
            self._pos = 0
        else:
            self._pos = end
        return datagram

    def feed(self, data: bytes | memoryview) -> list[bytes]:
        """Append bytes and return every datagram now complete (copies), in order.

        The bulk path of a tunnel: whole datagrams are cut straight out of ``data``; only a
        datagram split across chunks is buffered.
        """
        return [d if type(d) is bytes else bytes(d) for d in self.split(data)]

    def split(self, data: bytes | memoryview) -> list[bytes | memoryview]:
        """Like :meth:`feed`, without copies: datagrams whole inside ``data`` come back as
        memoryview slices of it (valid as long as ``data`` is; send them before returning), a
        datagram reassembled across chunks as bytes.
        """
        out: list[bytes | memoryview] = []
        view = memoryview(data)
        n = len(view)
        pos = 0
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        buf = self._buf
        if buf:
            if len(buf) < PREFIX_LEN:
                pos = min(PREFIX_LEN - len(buf), n)
                buf += view[:pos]
                if len(buf) < PREFIX_LEN:
                    return out
            want = PREFIX_LEN + int.from_bytes(buf[:PREFIX_LEN], "big") - len(buf)
            take = min(want, n - pos)
            buf += view[pos : pos + take]
            pos += take
            if take < want:
                return out
            out.append(bytes(buf[PREFIX_LEN:]))
            buf.clear()
        while n - pos >= PREFIX_LEN:
            end = pos + PREFIX_LEN + (view[pos] << 8 | view[pos + 1])
            if end > n:
                break
            out.append(view[pos + PREFIX_LEN : end])
            pos = end
        if pos < n:
            buf += view[pos:]
        return out
