"""Saying no to a visitor: a relay status, or an HTTP 502/503 when it spoke HTTP, then close.

The router (router.py) re-exports these.
"""

from __future__ import annotations

from burrow.proto.relay import Status
from burrow.routing.refusal import Refusal, http_reply, refusal_for_status
from burrow.server.delivery import status_reply
from burrow.server.inbound import Inbound

HTTP_STATUS = {
    502: http_reply(refusal_for_status(Status.HOST_UNREACHABLE)),
    503: http_reply(refusal_for_status(Status.SERVICE_UNAVAILABLE)),
}


def refuse(
    inbound: Inbound, kind: str, prefix: bytes, status: Status, why: Refusal | None = None
) -> None:
    """Tell the visitor no (relay status, or HTTP 502/503 when it spoke HTTP) and close.

    An HTTP reply carries a short text body saying which host and why (burrow.routing.refusal);
    without ``why`` it says only what the status implies.
    """
    if kind == "visitor":
        inbound.send(status_reply(status))
    elif looks_like_http(prefix):
        if why is None:
            inbound.send(HTTP_STATUS[503 if status == Status.SERVICE_UNAVAILABLE else 502])
        else:
            inbound.send(http_reply(why, head=prefix.startswith(b"HEAD ")))
    inbound.close()


def looks_like_http(data: bytes) -> bool:
    """True when the bytes start like an HTTP/1 request (for choosing an HTTP error reply)."""
    return bool(data) and data[:1] != b"\x16" and b" " in data[:40]
