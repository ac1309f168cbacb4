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
from typing import Final

from burrow.common.hostport import parse_host_port
from burrow.proto.sniff_result import (
    _HOST_VALUE,
    NEED_MORE,
    NOT_MATCHED,
    Buffer,
    NeedMore,
    NotMatched,
    Sniffed,
    SniffResult,
    _Resumable,
    _wait,
)
from burrow.proto.sniff_tls import _TLS_HANDSHAKE, MAX_SNIFF_BYTES, _TlsSniffer, sniff_tls

# Re-exported for the many modules that import them from here.
__all__ = [
    "MAX_HTTP_HEAD", "MAX_SNIFF_BYTES", "NEED_MORE", "NOT_MATCHED", "NeedMore", "NotMatched",
    "SniffResult", "Sniffed", "Sniffer", "http_host_port", "sniff", "sniff_http", "sniff_tls",
]  # fmt: skip

MAX_HTTP_HEAD: Final = 16384  # request line + headers + blank line, in bytes
MAX_METHOD_LEN: Final = 32  # the longest registered method is 17 characters


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
