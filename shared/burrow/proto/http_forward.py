"""Forwarding headers for TLS-terminated entry-point traffic: HTTP/1.x request heads rewritten.

Sans-IO: :class:`RequestRewriter` takes the decrypted bytes of one visitor connection, in any
chunking, and returns the bytes to send into the tunnel. Every request head on the connection is
rewritten (docs/security.md, TLS at the entry point), so a keep-alive follow-up request cannot
carry forwarding headers of the visitor's own making past the first one:

* ``X-Forwarded-For``, ``X-Forwarded-Proto``, ``X-Forwarded-Host``, ``X-Real-IP`` and
  ``Forwarded`` sent by the visitor are dropped: the entry point is the edge, nothing before it
  is trusted. Then ``X-Forwarded-For: <ip>``, ``X-Forwarded-Proto: https`` and ``Forwarded:
  for=<ip>;proto=https;host=<host>`` (RFC 7239) are appended.
* Bodies are framed as RFC 9112 §6 says for requests (``Content-Length``, ``chunked``, else
  none) and passed through untouched, so the next head is found where the backend will find it.
  Framing that could be read two ways (both headers, differing lengths, another transfer
  coding, obs-fold, whitespace before a colon) is refused: that is request smuggling.
* After a request asking to switch protocols (``Upgrade`` with ``Connection: upgrade``, or
  ``CONNECT``) the rest of the connection passes unchanged: it is no longer HTTP/1.
* The Host must name the TLS server name the connection was made for (RFC 9110 §15.5.20 421
  otherwise): the tunnel was chosen from the SNI before any byte was decrypted.

Errors raise :class:`ForwardError` with the HTTP status to answer; the caller closes.
"""

from __future__ import annotations

import re
from typing import Final

from burrow.proto.sniff import MAX_HTTP_HEAD, http_host_port

MAX_CHUNK_LINE: Final = 4096  # chunk-size line with extensions, or one trailer line

_DROPPED: Final = frozenset(
    {b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"x-real-ip", b"forwarded"}
)
_TOKEN: Final = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HOST_CHARS: Final = re.compile(rb"[A-Za-z0-9.\-:\[\]_]*")
_VERSIONS: Final = (b"HTTP/1.1", b"HTTP/1.0")

_HEAD, _BODY, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _TRAILER, _PASS = range(7)


class ForwardError(Exception):
    """The visitor's bytes cannot be forwarded as HTTP/1: answer ``status`` and close."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def forwarded_for(ip: str) -> str:
    """RFC 7239 node for ``ip``: an IPv6 literal is bracketed and quoted."""
    return f'"[{ip}]"' if ":" in ip else ip


def _quoted(value: str) -> str:
    return value if _TOKEN.fullmatch(value.encode()) else f'"{value}"'


class RequestRewriter:
    """Rewrites every request head of one connection; bodies pass through as framed."""

    __slots__ = ("_added", "_buf", "_expect", "_left", "_max_head", "_proto", "_state", "requests")

    def __init__(
        self,
        client_ip: str,
        server_name: str,
        *,
        proto: str = "https",
        max_head: int = MAX_HTTP_HEAD,
    ) -> None:
        self._expect = server_name.lower()
        self._proto = proto
        self._max_head = max_head
        self._added = (
            f"X-Forwarded-For: {client_ip}\r\nX-Forwarded-Proto: {proto}\r\n".encode(),
            f"Forwarded: for={forwarded_for(client_ip)};proto={proto};host=".encode(),
        )
        self._buf = bytearray()
        self._state = _HEAD
        self._left = 0
        self.requests = 0  # heads rewritten so far

    @property
    def passthrough(self) -> bool:
        """True once the connection switched protocols: feed() returns its input unchanged."""
        return self._state == _PASS

    def feed(self, data: bytes) -> bytes:
        """Bytes to forward for ``data`` (possibly empty while a head is incomplete)."""
        state = self._state
        if state == _PASS:
            return data
        if state == _BODY and len(data) <= self._left:
            # The bulk of an upload: no copy, no framing to look at.
            self._left -= len(data)
            if self._left == 0:
                self._state = _HEAD
            return data
        out: list[bytes] = []
        view = memoryview(data)
        pos, end = 0, len(data)
        while pos < end:
            state = self._state
            if state == _PASS:
                out.append(bytes(view[pos:]))
                break
            if state in (_BODY, _CHUNK_DATA):
                take = min(self._left, end - pos)
                out.append(bytes(view[pos : pos + take]))
                pos += take
                self._left -= take
                if self._left == 0:
                    self._state = _HEAD if state == _BODY else _CHUNK_END
                continue
            if state == _HEAD:
                pos = self._feed_head(view, pos, out)
            else:
                pos = self._feed_line(view, pos, out)
        return b"".join(out)

    # -- heads -----------------------------------------------------------------------------
    def _feed_head(self, view: memoryview, pos: int, out: list[bytes]) -> int:
        buf = self._buf
        start = len(buf)
        if start == 0:
            # Stray CRLFs between requests are ignored (RFC 9112 §2.2).
            while pos < len(view) and view[pos] in (0x0D, 0x0A):
                pos += 1
            if pos == len(view):
                return pos
        # Search from a little before the old end: the blank line may straddle two reads.
        buf += view[pos:]
        i = buf.find(b"\n\r\n", max(0, start - 2))
        j = buf.find(b"\n\n", max(0, start - 1))
        ends = [k for k in ((i + 3) if i >= 0 else -1, (j + 2) if j >= 0 else -1) if k > 0]
        if not ends:
            if len(buf) > self._max_head:
                raise ForwardError(431, "request head too large")
            return len(view)
        cut = min(ends)
        if cut > self._max_head:
            raise ForwardError(431, "request head too large")
        head = bytes(buf[:cut])
        rest = len(buf) - cut
        self._buf = bytearray()
        out.append(self._rewrite(head))
        return len(view) - rest

    def _rewrite(self, head: bytes) -> bytes:
        lines = head.split(b"\n")
        line0 = lines[0].removesuffix(b"\r")
        parts = line0.split(b" ")
        if len(parts) != 3 or not _TOKEN.fullmatch(parts[0]) or not parts[1]:
            raise ForwardError(400, "not an HTTP/1 request line")
        method, version = parts[0], parts[2]
        if version not in _VERSIONS:
            raise ForwardError(505 if version.startswith(b"HTTP/") else 400, "not HTTP/1.0 or 1.1")
        kept: list[bytes] = [line0]
        hosts: list[bytes] = []
        lengths: list[bytes] = []
        codings: list[bytes] = []
        connection: list[bytes] = []
        upgrade = False
        for raw in lines[1:]:
            line = raw.removesuffix(b"\r")
            if not line:
                continue
            if line[:1] in (b" ", b"\t"):
                raise ForwardError(400, "obsolete line folding")
            name, sep, value = line.partition(b":")
            if not sep or not _TOKEN.fullmatch(name):
                raise ForwardError(400, "malformed header line")
            key = name.lower()
            value = value.strip(b" \t")
            if key in _DROPPED:
                continue
            if key == b"host":
                hosts.append(value)
            elif key == b"content-length":
                lengths.extend(v.strip(b" \t") for v in value.split(b","))
            elif key == b"transfer-encoding":
                codings.extend(v.strip(b" \t").lower() for v in value.split(b","))
            elif key == b"connection":
                connection.extend(v.strip(b" \t").lower() for v in value.split(b","))
            elif key == b"upgrade":
                upgrade = True
            kept.append(line)
        host = self._host(hosts, version)
        kept.append(self._added[0] + self._added[1] + _quoted(host).encode())
        self._frame(lengths, codings, version)
        if method == b"CONNECT" or (upgrade and b"upgrade" in connection):
            self._state = _PASS
        self.requests += 1
        return b"\r\n".join(kept) + b"\r\n\r\n"

    def _host(self, hosts: list[bytes], version: bytes) -> str:
        if len(hosts) > 1:
            raise ForwardError(400, "more than one Host header")
        if not hosts:
            if version == b"HTTP/1.1":
                raise ForwardError(400, "no Host header")
            return self._expect
        raw = hosts[0]
        if not raw or not _HOST_CHARS.fullmatch(raw):
            raise ForwardError(400, "malformed Host header")
        text = raw.decode("ascii")
        try:
            name, _ = http_host_port(text, 443)
        except ValueError:
            raise ForwardError(400, "malformed Host header") from None
        if name.lower() != self._expect:
            raise ForwardError(421, "Host does not match the TLS server name")
        return text

    def _frame(self, lengths: list[bytes], codings: list[bytes], version: bytes) -> None:
        if codings:
            if lengths:
                raise ForwardError(400, "both Content-Length and Transfer-Encoding")
            if (
                codings[-1] != b"chunked"
                or codings.count(b"chunked") != 1
                or version != b"HTTP/1.1"
            ):
                raise ForwardError(501, "unsupported transfer coding")
            self._state = _CHUNK_SIZE
            return
        self._state = _HEAD
        if lengths:
            first = lengths[0]
            if any(v != first for v in lengths) or not first.isdigit() or len(first) > 18:
                raise ForwardError(400, "invalid Content-Length")
            self._left = int(first)
            if self._left:
                self._state = _BODY

    # -- chunked bodies -------------------------------------------------------------------
    def _feed_line(self, view: memoryview, pos: int, out: list[bytes]) -> int:
        """One line of chunked framing (size, the CRLF after data, trailers), passed through."""
        nl = bytes(view[pos : pos + MAX_CHUNK_LINE + 1]).find(b"\n")
        if nl < 0:
            piece = bytes(view[pos:])
            self._buf += piece
            if len(self._buf) > MAX_CHUNK_LINE:
                raise ForwardError(400, "chunk line too long")
            out.append(piece)
            return len(view)
        piece = bytes(view[pos : pos + nl + 1])
        out.append(piece)
        self._buf += piece
        line = bytes(self._buf).rstrip(b"\r\n")
        if len(self._buf) > MAX_CHUNK_LINE + 2:
            raise ForwardError(400, "chunk line too long")
        self._buf = bytearray()
        state = self._state
        if state == _CHUNK_SIZE:
            size = line.split(b";", 1)[0].strip(b" \t")
            if not size or len(size) > 15 or not all(c in b"0123456789abcdefABCDEF" for c in size):
                raise ForwardError(400, "invalid chunk size")
            self._left = int(size, 16)
            self._state = _CHUNK_DATA if self._left else _TRAILER
        elif state == _CHUNK_END:
            if line:
                raise ForwardError(400, "chunk data longer than its size")
            self._state = _CHUNK_SIZE
        elif not line:  # _TRAILER: the blank line ends the message
            self._state = _HEAD
        return pos + nl + 1
