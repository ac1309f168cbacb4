"""The server's first bytes on each tunnel stream (docs/protocol.md, Per-stream header)."""

from __future__ import annotations

import pytest

from burrow.proto.addr import ATYP_DOMAIN, ATYP_IPV4, ATYP_IPV6, Address
from burrow.proto.errors import LocalProtocolError, RemoteProtocolError
from burrow.proto.relay import RelayResponse, Status, parse_response
from burrow.proto.relay_features import AddrFeature, NetworkFeature
from burrow.proto.stream_header import StreamHeader, parse_stream_header

# docs/protocol.md, Per-stream header: visitor 203.0.113.7:51000, target example.com:80
SPEC_HEADER = bytes.fromhex(
    "01 00 00 1c 02 00 07 01 cb 00 71 07 c7 38"
    " 02 00 0f 03 0b 65 78 61 6d 70 6c 65 2e 63 6f 6d 00 50"
)


def test_spec_example() -> None:
    header = StreamHeader(
        Address.from_hostport("203.0.113.7:51000"), Address.from_hostport("example.com:80")
    )
    assert header.encode() == SPEC_HEADER
    parsed, used = parse_stream_header(SPEC_HEADER + b"GET /") or pytest.fail("incomplete")
    assert used == len(SPEC_HEADER)
    assert parsed == header
    assert parsed.host == "example.com:80"


def test_missing_src_is_sent_as_empty_address() -> None:
    # HEAD entry point without X-Forwarded-For: "03 00 00 00" then the SNI host on 443
    header = StreamHeader(None, Address.from_hostport("example.com:443"))
    wire = header.encode()
    assert wire[:11] == bytes.fromhex("01 00 00 19 02 00 04 03 00 00 00")
    parsed, _ = parse_stream_header(wire) or pytest.fail("incomplete")
    assert parsed.src == Address("", 0, ATYP_DOMAIN)
    assert parsed.host == "example.com:443"


def test_without_destination() -> None:
    # rc6 entry point: only the visitor's address
    header = StreamHeader(Address.from_hostport("[2001:db8::7]:40000"), None)
    wire = header.encode()
    assert wire[:4] == bytes.fromhex("01 00 00 16")
    parsed, _ = parse_stream_header(wire) or pytest.fail("incomplete")
    assert parsed == header and parsed.src is not None and parsed.src.atyp == ATYP_IPV6
    assert parsed.host == ""
    assert StreamHeader(None, None).encode() == bytes.fromhex("01 00 00 07 02 00 04 03 00 00 00")


def test_relay_dialect_visitor_target_is_domain_typed() -> None:
    header = StreamHeader(
        Address.from_hostport("127.0.0.1:5000"),
        Address.from_hostport("10.0.0.5:22", force_domain=True),
    )
    parsed, _ = parse_stream_header(header.encode()) or pytest.fail("incomplete")
    assert parsed.dst == Address("10.0.0.5", 22, ATYP_DOMAIN)
    assert parsed.host == "10.0.0.5:22"


def test_source_must_be_ip_or_empty() -> None:
    with pytest.raises(LocalProtocolError):
        StreamHeader(Address.from_hostport("visitor.example:1"), None).encode()
    # an empty domain-typed host is the legal "no address"
    assert StreamHeader(Address("", 5, ATYP_DOMAIN), None).encode()[-4:] == bytes.fromhex(
        "03 00 00 05"
    )


def test_from_response_rules() -> None:
    a, b, c = (Address.from_hostport(t) for t in ("1.2.3.4:5", "x.example:80", "y.example:81"))
    three = RelayResponse(
        Status.OK, (NetworkFeature(1), AddrFeature(a), AddrFeature(b), AddrFeature(c))
    )
    assert StreamHeader.from_response(three) == StreamHeader(a, b)  # later Addrs ignored
    assert StreamHeader.from_response(RelayResponse(Status.OK)) == StreamHeader(None, None)
    for status in (1, 5, 6, 0x42):
        with pytest.raises(RemoteProtocolError, match=str(status)):
            StreamHeader.from_response(RelayResponse(status, (AddrFeature(a),)))


def test_parse_needs_whole_header_and_rejects_bad_bytes() -> None:
    for cut in range(len(SPEC_HEADER)):
        assert parse_stream_header(SPEC_HEADER[:cut]) is None
    with pytest.raises(RemoteProtocolError):
        parse_stream_header(b"\x02")
    with pytest.raises(RemoteProtocolError):
        parse_stream_header(bytes.fromhex("01 06 00 00"))
    with pytest.raises(RemoteProtocolError):
        parse_stream_header(bytes.fromhex("01 00 00 04 02 00 01 01"))


def test_header_is_a_plain_relay_response() -> None:
    resp, _ = parse_response(SPEC_HEADER) or pytest.fail("incomplete")
    assert StreamHeader.from_response(resp).src == Address("203.0.113.7", 51000, ATYP_IPV4)
