"""Protocol sniffers for the first bytes of a connection: HTTP/1.x request head and TLS ClientHello.

Implements entry-point protocol detection (docs/architecture.md, Flows (a)) and the sniffing used by
client node selection (docs/configuration.md, ``[[services]]``). Wire shapes (RFC 8446 §5.1 and
§4.1.2, RFC 6066 §3)::

    TLS record     type(1)=0x16 | version(2)=0x0300..0x0304 | length(2) | fragment(length)
    handshake      msg_type(1)=0x01 | length(3) | ClientHello(length)   (may span several records)
    ClientHello    legacy_version(2) | random(32) | session_id(len:1) | cipher_suites(len:2)
                   | compression_methods(len:1) | [extensions(len:2)]
    extension      type(2) | length(2) | data(length)
    server_name    list_length(2) | { name_type(1)=0 host_name | name_length(2) | name } ...

And RFC 9112 §3 and §5::

    method SP request-target SP "HTTP/1." DIGIT CRLF
    *( field-name ":" OWS field-value OWS CRLF )
    CRLF                                   (a bare LF is accepted wherever CRLF is)

The one-shot functions keep no state: call again with the grown buffer, or feed a
:class:`Sniffer` the grown buffer to pay for each byte once. They answer NEED_MORE while the
bytes seen could still become a match, NOT_MATCHED as soon as they cannot (malformed input or
input past the caps included), and never raise.

Decisions:
* TLS record version 0x0300 is accepted besides 0x0301..0x0304: RFC 5246 appendix E.1 lets a
  client put {3,0} in the record layer of its first ClientHello, the hello itself may still carry
  SNI, and rejecting it would only make such a client unroutable (gost HEAD takes 0x0301..0x0304,
  rc-era only 0x0301).
* A host (SNI or Host header) must be printable ASCII without spaces; anything else is treated as
  malformed, so raw control bytes never reach routing or logs.
* "SSH-" at the start is rejected at once: it is a valid token, but no HTTP method looks like an
  SSH banner, and this lets SSH traffic fail after 4 bytes instead of at the first line end.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

from burrow.common.hostport import parse_host_port

# Why 64 KiB + 5: a ClientHello may be fragmented over several records (post-quantum key shares
# already make it several KB), so the TLS sniffer reassembles; the cap bounds what a peer can make
# us buffer before we decide. 5 + 65535 is the largest single record its 16-bit length field can
# announce, so the cap never cuts one record short: only multi-record hellos beyond 64 KiB (about
# 30 times any real one) are refused.
MAX_SNIFF_BYTES: Final = 65536 + 5
MAX_HTTP_HEAD: Final = 16384  # request line + headers + blank line, in bytes
MAX_METHOD_LEN: Final = 32  # the longest registered method is 17 characters

_TLS_RECORD_HEADER: Final = 5
_TLS_HANDSHAKE: Final = 0x16
_TLS_CLIENT_HELLO: Final = 0x01
_TLS_MAX_RECORD_MINOR: Final = 4
_HANDSHAKE_HEADER: Final = 4
_EXT_SERVER_NAME: Final = 0
_SNI_HOST_NAME: Final = 0
_MAX_SESSION_ID: Final = 32


@dataclass(frozen=True, slots=True)
class Sniffed:
    """A recognised protocol and the host it names ("" when it names none)."""

    protocol: Literal["http", "tls"]
    host: str


class NeedMore:
    """Type of NEED_MORE: the bytes so far could still become a match."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NEED_MORE"


class NotMatched:
    """Type of NOT_MATCHED: not this protocol, malformed, or over the cap."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NOT_MATCHED"


NEED_MORE: Final = NeedMore()
NOT_MATCHED: Final = NotMatched()
SniffResult = Sniffed | NeedMore | NotMatched
Buffer = bytes | bytearray | memoryview


# --- HTTP/1.x ------------------------------------------------------------------------------------

_T = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]"  # RFC 9110 tchar
_V = rb"[\x21-\x7e\x80-\xff]"  # request-target: visible ASCII and obs-text
_F = rb"[\t\x20-\x7e\x80-\xff]"  # field-value: no control bytes except HTAB
_M = _T + rb"{1,%d}" % MAX_METHOD_LEN
_VERSION_PREFIXES = b"|".join(re.escape(b"HTTP/1."[:i]) for i in range(len(b"HTTP/1.") + 1))
_REQUEST_LINE = re.compile(_M + rb" (" + _V + rb"+) HTTP/1\.[0-9]\r?")
# absolute-form (RFC 9112 §3.2.2): scheme "://" [userinfo "@"] authority, up to / ? or #
_ABSOLUTE_AUTHORITY = re.compile(rb"(?i:https?)://(?:[^/?#@]*@)?([^/?#]*)")
_PARTIAL_REQUEST_LINE = re.compile(
    _T
    + rb"{0,%d}" % MAX_METHOD_LEN
    + rb"|"
    + _M
    + rb" "
    + _V
    + rb"*"
    + rb"|"
    + _M
    + rb" "
    + _V
    + rb"+ (?:"
    + _VERSION_PREFIXES
    + rb"|HTTP/1\.[0-9]\r?)"
)
_HEADER_LINE = re.compile(rb"(" + _T + rb"+):(" + _F + rb"*)\r?")
_PARTIAL_HEADER_LINE = re.compile(_T + rb"*|" + _T + rb"+:" + _F + rb"*\r?|\r")
_HOST_VALUE = re.compile(rb"[\x21-\x7e]*")


def _wait(buf_len: int, cap: int) -> NeedMore | NotMatched:
    """NEED_MORE, unless the caller already showed us everything we will ever look at."""
    return NOT_MATCHED if buf_len >= cap else NEED_MORE


class _Resumable:
    """A sniffer fed the whole (grown) buffer on each call; its first verdict is kept for good."""

    __slots__ = ("result",)

    def __init__(self) -> None:
        self.result: Sniffed | NotMatched | None = None

    def feed(self, buf: Buffer) -> SniffResult:
        if self.result is None:
            r = self._feed(buf)
            if r is not NEED_MORE:
                self.result = r  # type: ignore[assignment]
            return r
        return self.result

    def _feed(self, buf: Buffer) -> SniffResult:
        raise NotImplementedError


def sniff_http(buf: Buffer) -> SniffResult:
    """Recognise an HTTP/1.x request head and return its Host header value."""
    return _HttpSniffer().feed(buf)


class _HttpSniffer(_Resumable):
    """HTTP head sniffer that resumes at the first line it has not finished yet.

    Each call gets the whole (grown) buffer; complete lines are never looked at twice, so a head
    trickled in tiny reads costs about what it costs in one read.
    """

    __slots__ = ("authority", "host", "pos", "scan")

    def __init__(self) -> None:
        super().__init__()
        self.pos = 0  # start of the first line not yet complete
        self.scan = 0  # where the search for that line's LF resumes
        self.host: str | None = None
        self.authority: str | None = None  # from an absolute-form request target

    def _feed(self, buf: Buffer) -> SniffResult:
        data = buf if isinstance(buf, (bytes, bytearray)) else bytes(buf)
        end = min(len(data), MAX_HTTP_HEAD)
        if not end:
            return NEED_MORE
        if data[:4] == b"SSH-":
            return NOT_MATCHED
        while True:
            pos = self.pos
            nl = data.find(b"\n", max(self.scan, pos), end)
            if nl < 0:
                self.scan = end
                # Lines starting with whitespace (obs-fold) fail here too: a folded Host is a
                # request-smuggling vector and RFC 9112 §5.2 lets us reject it.
                partial = _PARTIAL_REQUEST_LINE if pos == 0 else _PARTIAL_HEADER_LINE
                if partial.fullmatch(data, pos, end) is None:
                    return NOT_MATCHED
                return _wait(len(buf), MAX_HTTP_HEAD)
            self.pos = self.scan = nl + 1
            if pos == 0:
                m = _REQUEST_LINE.fullmatch(data, 0, nl)
                if m is None:
                    return NOT_MATCHED
                absolute = _ABSOLUTE_AUTHORITY.match(m[1])
                if absolute is not None:
                    if _HOST_VALUE.fullmatch(absolute[1]) is None:
                        return NOT_MATCHED
                    self.authority = absolute[1].decode("ascii")
                continue
            if nl == pos or (nl == pos + 1 and data[pos] == 0x0D):
                # RFC 9112 §3.2.2: with an absolute-form target, its authority wins over Host.
                host = self.authority if self.authority is not None else self.host
                return Sniffed("http", host or "")
            m = _HEADER_LINE.fullmatch(data, pos, nl)
            if m is None:
                return NOT_MATCHED
            if m[1].lower() == b"host":
                value = m[2].strip(b" \t")
                # Several Host headers make the target ambiguous (RFC 9112 §3.2: answer 400).
                if self.host is not None or _HOST_VALUE.fullmatch(value) is None:
                    return NOT_MATCHED
                self.host = value.decode("ascii")


# --- TLS ClientHello ------------------------------------------------------------------------------


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


# --- dispatch and helpers -------------------------------------------------------------------------


def sniff(buf: Buffer) -> SniffResult:
    """Sniff TLS when the first byte is a handshake record, HTTP otherwise (one shot)."""
    return Sniffer().feed(buf)


class Sniffer:
    """Incremental :func:`sniff` for one connection: call :meth:`feed` with the grown buffer.

    The buffer must only grow (bytes appended); results equal ``sniff(buf)`` for every prefix,
    at a cost linear in the bytes seen.
    """

    __slots__ = ("_inner",)

    def __init__(self) -> None:
        self._inner: _TlsSniffer | _HttpSniffer | None = None

    def feed(self, buf: Buffer) -> SniffResult:
        """The sniff result for ``buf`` (everything received so far)."""
        if not buf:
            return NEED_MORE
        if self._inner is None:
            self._inner = _TlsSniffer() if buf[0] == _TLS_HANDSHAKE else _HttpSniffer()
        return self._inner.feed(buf)


def http_host_port(host: str, default_port: int) -> tuple[str, int]:
    """Split a Host value into (host, port): "a.com:8080", "[::1]:80", no port -> default_port.

    Brackets are removed from IPv6 literals; a bare IPv6 literal keeps the default port; an
    empty port ("a.com:") means the default. Raises ValueError for a port that is not 0..65535
    or a malformed bracketed literal.
    """
    return parse_host_port(host, default_port=default_port, bare_ipv6=True)
