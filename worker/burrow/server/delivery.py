"""What a routed visitor connection is (``Delivery``) and the bytes that go out for it.

The per-stream header a tunnel client reads first (docs/protocol.md, Per-stream header) and the
relay status replies a visitor gets, encoded once. The router (router.py) re-exports these.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from burrow.common.ids import TunnelId
from burrow.proto.addr import Address, split_hostport
from burrow.proto.errors import ProtocolError
from burrow.proto.relay import RelayRequest, RelayResponse, Status
from burrow.proto.stream_header import StreamHeader

NO_REPLY = -1


@dataclass(frozen=True, slots=True)
class Delivery:
    """Where a visitor connection goes and what it carries."""

    kind: str  # "entrypoint" | "visitor"
    service: str
    tunnel_id: TunnelId
    network: str
    dialect: str
    peer: str  # visitor "ip:port" ("" when unknown)
    target: str  # Addr #2 "host:port" ("" for none)
    reply: int  # relay status to send before piping, NO_REPLY for entry points
    # Came from another cluster node: routed to this node's connectors only, never forwarded.
    forwarded: bool = False
    # A visitor's relay CONNECT as parsed (replayed to a gost node by burrow.server.forward).
    request: RelayRequest | None = None


def _src_address(peer: str) -> Address:
    host, port = split_hostport(peer) if peer else ("", 0)
    try:
        return Address.of(host, port)
    except ProtocolError:
        return Address.of("", 0)


# The short replies, encoded once: they go out on every visitor connection.
_REPLIES = {status: RelayResponse(status).encode() for status in Status}


def status_reply(status: int) -> bytes:
    """Encoded ``RelayResponse(status)`` with no features."""
    reply = _REPLIES.get(status)  # type: ignore[call-overload]
    return reply if reply is not None else RelayResponse(status).encode()


@functools.lru_cache(maxsize=1024)
def _dst_address(target: str, force_domain: bool) -> Address:
    return Address.from_hostport(target, force_domain=force_domain)


def stream_header(d: Delivery, dialect: str) -> bytes:
    """The header a tunnel client reads first on every stream."""
    dst = None
    if d.target:
        # rc-era relay servers always send the visitor target domain-typed
        # (docs/protocol.md, Per-stream header)
        dst = _dst_address(d.target, dialect == "relay" and d.kind == "visitor")
    src = _src_address(d.peer)
    if src.atyp == 3 and src.host:
        src = Address.of("", 0)
    return StreamHeader(src=src, dst=dst).encode()
