"""TLS ClientHello sniffer: the SNI host name of a connection's first bytes (sans-IO).

Wire shapes and decisions are in sniff.py's docstring (RFC 8446 §5.1 and §4.1.2, RFC 6066 §3).
The hello is reassembled over several records up to MAX_SNIFF_BYTES; sniff.py re-exports
``sniff_tls`` and ``MAX_SNIFF_BYTES``.
"""

from __future__ import annotations

from typing import Final

from burrow.proto.sniff_result import (
    _HOST_VALUE,
    NOT_MATCHED,
    Buffer,
    Sniffed,
    SniffResult,
    _Resumable,
    _wait,
)

# Why 64 KiB + 5: a ClientHello may be fragmented over several records (post-quantum key shares
# already make it several KB), so the TLS sniffer reassembles; the cap bounds what a peer can make
# us buffer before we decide. 5 + 65535 is the largest single record its 16-bit length field can
# announce, so the cap never cuts one record short: only multi-record hellos beyond 64 KiB (about
# 30 times any real one) are refused.
MAX_SNIFF_BYTES: Final = 65536 + 5

_TLS_RECORD_HEADER: Final = 5
_TLS_HANDSHAKE: Final = 0x16
_TLS_CLIENT_HELLO: Final = 0x01
_TLS_MAX_RECORD_MINOR: Final = 4
_HANDSHAKE_HEADER: Final = 4
_EXT_SERVER_NAME: Final = 0
_SNI_HOST_NAME: Final = 0
_MAX_SESSION_ID: Final = 32


class _Malformed(Exception):
    """Internal: the ClientHello body does not parse."""


class _Reader:
    """Bounds-checked cursor over one ClientHello body."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise _Malformed
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    def vector(self, len_size: int) -> bytes:
        return self.take(self.uint(len_size))

    @property
    def left(self) -> int:
        return len(self.data) - self.pos


def _server_name(data: bytes) -> str:
    """The host_name entry of a server_name extension's data ("" when it has none)."""
    r = _Reader(data)
    names = _Reader(r.vector(2))
    if r.left or not names.left:
        raise _Malformed
    host: str | None = None
    while names.left:
        name_type = names.uint(1)
        name = names.vector(2)
        if name_type != _SNI_HOST_NAME:
            continue
        # RFC 6066 §3: one name per type; an empty or non-ASCII host_name is malformed.
        if host is not None or not name or _HOST_VALUE.fullmatch(name) is None:
            raise _Malformed
        host = name.decode("ascii")
    return host or ""


def _parse_client_hello(body: bytes) -> Sniffed:
    """Walk a whole ClientHello body; raises _Malformed."""
    r = _Reader(body)
    if r.uint(1) != 3:  # legacy_version major
        raise _Malformed
    r.take(1 + 32)  # minor, random
    if len(r.vector(1)) > _MAX_SESSION_ID:
        raise _Malformed
    suites = r.vector(2)
    if not suites or len(suites) % 2:
        raise _Malformed
    if not r.vector(1):  # compression_methods
        raise _Malformed
    if not r.left:  # pre-extension hellos (SSL 3.0 style): valid, but no SNI
        return Sniffed("tls", "")
    exts = _Reader(r.vector(2))
    if r.left:
        raise _Malformed
    host = ""
    seen: set[int] = set()
    while exts.left:
        ext_type = exts.uint(2)
        ext_data = exts.vector(2)
        if ext_type in seen:  # RFC 8446 §4.2: at most one extension of each type
            raise _Malformed
        seen.add(ext_type)
        if ext_type == _EXT_SERVER_NAME:
            host = _server_name(ext_data)
    return Sniffed("tls", host)


def _record_header_ok(head: bytes) -> bool:
    """Whether a (possibly partial) record header can belong to a ClientHello."""
    if len(head) >= 1 and head[0] != _TLS_HANDSHAKE:
        return False
    if len(head) >= 2 and head[1] != 3:
        return False
    if len(head) >= 3 and head[2] > _TLS_MAX_RECORD_MINOR:
        return False
    # Zero-length handshake fragments are forbidden (RFC 8446 §5.1).
    return not (len(head) >= 5 and head[3] == 0 and head[4] == 0)


def sniff_tls(buf: Buffer) -> SniffResult:
    """Recognise a TLS ClientHello (reassembled across records) and return its SNI."""
    return _TlsSniffer().feed(buf)


class _TlsSniffer(_Resumable):
    """ClientHello reassembler that resumes where the previous call stopped.

    Each call gets the whole (grown) buffer; every byte is copied into the handshake once, so a
    hello sent in 1-byte records costs linear time, not one re-walk of all records per read.
    """

    __slots__ = ("handshake", "off", "owed")

    def __init__(self) -> None:
        super().__init__()
        self.off = 0  # next byte of the buffer not yet consumed
        self.owed = 0  # fragment bytes the current record still has to deliver
        self.handshake = bytearray()

    def _feed(self, buf: Buffer) -> SniffResult:
        n = min(len(buf), MAX_SNIFF_BYTES)
        handshake = self.handshake
        while True:
            if not self.owed:
                head = bytes(buf[self.off : min(self.off + _TLS_RECORD_HEADER, n)])
                if not _record_header_ok(head):
                    return NOT_MATCHED
                if len(head) < _TLS_RECORD_HEADER:
                    return _wait(len(buf), MAX_SNIFF_BYTES)
                self.owed = int.from_bytes(head[3:5], "big")  # never 0: _record_header_ok
                self.off += _TLS_RECORD_HEADER
            take = min(self.owed, n - self.off)
            if take <= 0:
                return _wait(len(buf), MAX_SNIFF_BYTES)
            handshake += buf[self.off : self.off + take]
            self.off += take
            self.owed -= take
            if handshake[0] != _TLS_CLIENT_HELLO:
                return NOT_MATCHED
            if len(handshake) >= _HANDSHAKE_HEADER:
                msg_len = int.from_bytes(handshake[1:4], "big")
                if _TLS_RECORD_HEADER + _HANDSHAKE_HEADER + msg_len > MAX_SNIFF_BYTES:
                    return NOT_MATCHED
                end = _HANDSHAKE_HEADER + msg_len
                if len(handshake) >= end:
                    try:
                        return _parse_client_hello(bytes(handshake[_HANDSHAKE_HEADER:end]))
                    except _Malformed:
                        return NOT_MATCHED
            if self.owed:
                return _wait(len(buf), MAX_SNIFF_BYTES)
