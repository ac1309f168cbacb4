"""IPv6 peers and targets on the server side: ban keys, stream headers, BIND replies."""

from __future__ import annotations

from burrow.common.ids import TunnelId
from burrow.proto.addr import ATYP_DOMAIN, ATYP_IPV4, ATYP_IPV6, Address
from burrow.proto.stream_header import parse_stream_header
from burrow.server.relay_bind import bind_reply_address, endpoint_name
from burrow.server.relay_server import _source
from burrow.server.router import Delivery, stream_header

TID = TunnelId.parse("4d21094e-b74c-4916-86c1-d9fa36ea677b")


def test_ban_key_is_the_host_of_an_ipv6_peer() -> None:
    assert _source("[::1]:40000") == "::1"
    assert _source("[2001:db8::7]:1") == "2001:db8::7"
    assert _source("127.0.0.1:40000") == "127.0.0.1"
    assert _source("") == ""


def delivery(kind: str, peer: str, target: str) -> Delivery:
    return Delivery(kind, "svc", TID, "tcp", "tunnel", peer, target, -1)


def test_stream_header_carries_ipv6_peer_and_target() -> None:
    raw = stream_header(delivery("entrypoint", "[2001:db8::7]:40000", "[::1]:8080"), "tunnel")
    parsed = parse_stream_header(raw)
    assert parsed is not None
    header, used = parsed
    assert used == len(raw)
    assert header.src == Address("2001:db8::7", 40000, ATYP_IPV6)
    assert header.dst == Address("::1", 8080, ATYP_IPV6)
    assert header.host == "[::1]:8080"


def test_relay_visitor_target_is_domain_typed_even_for_ipv6() -> None:
    # rc-era servers send a visitor's target as a domain; the client still reads "::1".
    raw = stream_header(delivery("visitor", "[::1]:5000", "[::1]:80"), "relay")
    parsed = parse_stream_header(raw)
    assert parsed is not None
    header = parsed[0]
    assert header.dst == Address("::1", 80, ATYP_DOMAIN)
    assert header.src is not None and header.src.atyp in (ATYP_IPV4, ATYP_IPV6)
    assert header.host == "[::1]:80"


def test_bind_reply_keeps_an_ipv6_bind_host_whole() -> None:
    want = Address("::1", 0, ATYP_IPV6)
    assert bind_reply_address([Address("::1", 0, ATYP_IPV6)], TID) == want
    v6 = Address("2001:db8::7", 8000, ATYP_DOMAIN)
    assert bind_reply_address([v6], TID) == Address("2001:db8::7", 8000, ATYP_IPV6)
    assert bind_reply_address([Address("::", 0, ATYP_IPV6)], TID).host == endpoint_name(TID)
    assert bind_reply_address([], TID) == Address(endpoint_name(TID), 0, ATYP_DOMAIN)
