"""A tunnel client that cannot reach its target: tell an HTTP visitor so, and log it (bounded).

Without this an entry-point visitor sees the connection close with no answer. When the stream's
first bytes are an HTTP/1 request, the client answers it with a 502 whose text body says the
tunnel client could not reach its target (burrow.routing.refusal); the target's own address is
never shown to visitors. Other protocols get the plain close they always got.
"""

from __future__ import annotations

import errno
import re
from typing import Final

from burrow.proto.sniff import Sniffed, sniff_http
from burrow.routing.refusal import TARGET_UNREACHABLE, Refusal, http_reply

_REQUEST_LINE: Final = re.compile(rb"[A-Z]{3,10} [^\s]+ HTTP/1\.[01]\r?\n")


def http_reply_for(early: bytes) -> bytes | None:
    """The 502 reply for a visitor whose first bytes are ``early``; None if not HTTP/1."""
    if _REQUEST_LINE.match(early) is None:
        return None
    found = sniff_http(early)
    host = found.host if isinstance(found, Sniffed) else ""
    return http_reply(Refusal(TARGET_UNREACHABLE, host), head=early.startswith(b"HEAD "))


def target_reason(error: OSError | None) -> str:
    """Why the target dial failed, in words (the limiter's key: no addresses or numbers)."""
    if error is None:
        return "target did not answer in time"
    if isinstance(error, ConnectionRefusedError):
        return "target refused the connection (is the service running?)"
    if error.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return "no route to the target"
    return "cannot connect to the target"
