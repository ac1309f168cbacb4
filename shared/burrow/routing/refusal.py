"""Why a visitor was refused, as data: the HTTP reply an entry point sends and its log fields.

Pure (bytes out, no sockets). An entry-point refusal has a reason code; this module turns it into
a short ``text/plain`` 502/503 reply naming the host and the reason, so a person with curl sees
what to fix. gost answers the same statuses with empty bodies: no rule and a private rule are
502, no tunnel client is 503.

Bodies never echo raw input: the host is reduced to hostname characters and capped, and no tunnel
ID appears in a body at all (a private tunnel's ID is what visitors must know to use it; the
operator's log carries the short form).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from burrow.proto.relay import Status

NO_HOST: Final = "no_host"
BAD_HOST: Final = "bad_host"
HOST_TOO_LONG: Final = "host_too_long"
NO_RULE: Final = "no_rule"
PRIVATE: Final = "private"
NO_CLIENT: Final = "no_client"
TARGET_UNREACHABLE: Final = "target_unreachable"
UNROUTABLE: Final = "unroutable"

HOST_CHARS: Final = 64  # a body names the host, never a page of someone's header
_HOST_OK: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:[]*")

# code -> (HTTP status, log reason, body sentence; {host} is "the host <sanitised>" or "this host")
_REASONS: Final[dict[str, tuple[int, str, str]]] = {
    NO_HOST: (502, "no host sniffed", "Burrow found no Host header or TLS server name to route."),
    BAD_HOST: (502, "bad host", "Burrow could not read {host}."),
    HOST_TOO_LONG: (502, "host too long", "The host name is longer than 255 bytes."),
    NO_RULE: (502, "no ingress rule", "No ingress rule names {host}."),
    PRIVATE: (
        502,
        "private tunnel",
        (
            "{Host} is served by a private tunnel: connect through a visitor "
            "that names its tunnel ID."
        ),
    ),
    NO_CLIENT: (
        503,
        "no tunnel client connected",
        "No tunnel client is connected for {host}; try again later.",
    ),
    TARGET_UNREACHABLE: (
        502,
        "tunnel client could not reach its target",
        "The tunnel client for {host} could not reach its target.",
    ),
    UNROUTABLE: (502, "unroutable", "Burrow could not route this request."),
}
_STATUS_LINE: Final = {502: "502 Bad Gateway", 503: "503 Service Unavailable"}


def sanitize_host(host: str) -> str:
    """The host as a body or log may show it: hostname characters only, at most 64 of them."""
    clean = "".join(ch if ch in _HOST_OK else "?" for ch in host[: HOST_CHARS + 1])
    return clean if len(clean) <= HOST_CHARS else clean[:HOST_CHARS] + "..."


@dataclass(frozen=True, slots=True)
class Refusal:
    """One refused visitor: ``code`` (a constant of this module) and the host it asked for."""

    code: str
    host: str = ""

    @property
    def http_status(self) -> int:
        return _REASONS.get(self.code, _REASONS[UNROUTABLE])[0]

    @property
    def reason(self) -> str:
        """The short reason for the log line (also the rate limiter's key)."""
        return _REASONS.get(self.code, _REASONS[UNROUTABLE])[1]

    def body(self) -> str:
        """The text/plain body: status line words, the host, what went wrong."""
        status, _, sentence = _REASONS.get(self.code, _REASONS[UNROUTABLE])
        host = f"the host {sanitize_host(self.host)}" if self.host else "this host"
        text = sentence.format(host=host, Host=host[:1].upper() + host[1:])
        return f"{_STATUS_LINE[status]}\n{text}\n"


def refusal_for_status(status: Status) -> Refusal:
    """A refusal that only has a relay status to go on (no host, no reason)."""
    return Refusal(NO_CLIENT if status == Status.SERVICE_UNAVAILABLE else UNROUTABLE)


def http_reply(refusal: Refusal, *, head: bool = False) -> bytes:
    """The whole HTTP/1.1 response; ``head`` (a HEAD request) leaves the body out."""
    body = refusal.body().encode("ascii", "replace")
    lines = (
        f"HTTP/1.1 {_STATUS_LINE[refusal.http_status]}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Cache-Control: no-store\r\n"
        "Connection: close\r\n\r\n"
    )
    return lines.encode("ascii") + (b"" if head else body)
