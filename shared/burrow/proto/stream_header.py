"""Per-stream header: the first bytes the server writes on every stream it opens in a tunnel.

Spec: docs/protocol.md, Per-stream header (a relay Response, docs/protocol.md, Relay header).

    01 00 FEALEN  Addr#1 = src (visitor address: IP, or empty host "03 00 00 00")
                  [Addr#2 = dst (target host:port)]

The client treats any problem with this header as fatal for its whole tunnel connection (gost's
rtcp/rudp listener drops the session and re-binds), and resolves Addr #1 as a TCP address. So the
encoder refuses a non-empty domain name as the source instead of sending it: an IP or nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from burrow.proto.addr import ATYP_DOMAIN, Address
from burrow.proto.errors import LocalProtocolError, RemoteProtocolError
from burrow.proto.relay import RelayResponse, Status, parse_response, status_text
from burrow.proto.relay_features import AddrFeature, Feature

EMPTY_ADDRESS: Final = Address("", 0, ATYP_DOMAIN)


@dataclass(frozen=True, slots=True)
class StreamHeader:
    """Source (visitor) and optional destination (target host) of a tunnel stream."""

    src: Address | None
    dst: Address | None

    def encode(self) -> bytes:
        """``RelayResponse(OK, [Addr src, Addr dst])``; src None is sent as the empty address."""
        src = self.src if self.src is not None else EMPTY_ADDRESS
        if src.atyp == ATYP_DOMAIN and src.host:
            raise LocalProtocolError(f"stream header src must be an IP or empty, not {src.host!r}")
        features: list[Feature] = [AddrFeature(src)]
        if self.dst is not None:
            features.append(AddrFeature(self.dst))
        return RelayResponse(Status.OK, tuple(features)).encode()

    @classmethod
    def from_response(cls, resp: RelayResponse) -> StreamHeader:
        """Header carried by ``resp``: Addr #1 and #2, later ones ignored; error unless status OK.

        A src sent as the empty address decodes as ``Address("", 0, 3)``; None means no Addr at all.
        """
        if resp.status != Status.OK:
            raise RemoteProtocolError(f"stream header: status {status_text(resp.status)}")
        addrs = resp.addrs
        return cls(addrs[0] if addrs else None, addrs[1] if len(addrs) > 1 else None)

    @property
    def host(self) -> str:
        """Target ``host:port`` (connection metadata "host" in gost), or ""."""
        return self.dst.hostport() if self.dst is not None else ""


def parse_stream_header(buf: bytes | bytearray | memoryview) -> tuple[StreamHeader, int] | None:
    """(header, bytes consumed) from the start of a stream, or None if more bytes are needed."""
    parsed = parse_response(buf)
    if parsed is None:
        return None
    return StreamHeader.from_response(parsed[0]), parsed[1]
