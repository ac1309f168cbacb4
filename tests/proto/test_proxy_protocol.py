"""PROXY protocol v1/v2 codec: spec examples, every family and command, caps and bad input."""

from __future__ import annotations

import struct

import pytest

from burrow.proto.errors import LocalProtocolError, RemoteProtocolError
from burrow.proto.proxy_protocol import (
    V2_SIGNATURE,
    build,
    build_v1,
    build_v2,
    detect,
    parse_proxy_header,
)


def test_v2_signature_is_the_spec_bytes() -> None:
    assert V2_SIGNATURE == bytes.fromhex("0D0A0D0A000D0A515549540A")


def test_v1_tcp4_roundtrip_with_payload_after() -> None:
    raw = build_v1(("203.0.113.7", 51000), ("192.0.2.1", 443))
    assert raw == b"PROXY TCP4 203.0.113.7 192.0.2.1 51000 443\r\n"
    got = parse_proxy_header(raw + b"GET / HTTP/1.1\r\n")
    assert got is not None
    header, used = got
    assert used == len(raw)
    assert (header.version, header.local, header.family) == (1, False, "tcp4")
    assert header.src == ("203.0.113.7", 51000) and header.dst == ("192.0.2.1", 443)


def test_v1_tcp6_and_unknown() -> None:
    raw = build_v1(("2001:db8::7", 1), ("2001:db8::1", 65535))
    assert raw == b"PROXY TCP6 2001:db8::7 2001:db8::1 1 65535\r\n"
    got = parse_proxy_header(raw)
    assert got is not None and got[0].src == ("2001:db8::7", 1)
    assert build_v1(None, None) == b"PROXY UNKNOWN\r\n"
    # Whatever follows UNKNOWN is ignored (spec 2.1).
    got = parse_proxy_header(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\nrest")
    assert got is not None
    assert got[0].family == "unknown" and got[0].src is None and got[1] == 35


def test_v2_ipv4_roundtrip() -> None:
    raw = build_v2(("203.0.113.7", 51000), ("127.0.0.1", 8080))
    assert raw[:12] == V2_SIGNATURE and raw[12] == 0x21 and raw[13] == 0x11
    assert struct.unpack("!H", raw[14:16])[0] == 12
    got = parse_proxy_header(raw + b"tail")
    assert got is not None
    header, used = got
    assert used == 28
    assert (header.version, header.family, header.src, header.dst) == (
        2, "tcp4", ("203.0.113.7", 51000), ("127.0.0.1", 8080),
    )  # fmt: skip


def test_v2_ipv6_and_mixed_families_use_v4_mapped() -> None:
    got = parse_proxy_header(build_v2(("2001:db8::7", 5), ("::1", 6)))
    assert got is not None and got[0].family == "tcp6" and got[1] == 16 + 36
    assert got[0].src == ("2001:db8::7", 5)
    mixed = build_v2(("203.0.113.7", 5), ("::1", 6))
    assert mixed[13] == 0x21
    got = parse_proxy_header(mixed)
    assert got is not None and got[0].src == ("203.0.113.7", 5)  # v4-mapped read back as v4
    line = build_v1(("203.0.113.7", 5), ("::1", 6))
    assert line.startswith(b"PROXY TCP6 ::ffff:")
    got = parse_proxy_header(line)
    assert got is not None and got[0].src == ("203.0.113.7", 5)


def test_v2_local_command_and_unspec() -> None:
    local = build_v2(("1.2.3.4", 1), ("5.6.7.8", 2), local=True)
    assert local[12] == 0x20
    got = parse_proxy_header(local)
    assert got is not None and got[0].local and got[0].src is None
    # LOCAL with an address block: the addresses are ignored.
    body = bytes(12)
    raw = V2_SIGNATURE + b"\x20\x11" + struct.pack("!H", len(body)) + body
    got = parse_proxy_header(raw)
    assert got is not None and got[0].local and got[0].src is None and got[1] == len(raw)
    unspec = build_v2(None, None)
    got = parse_proxy_header(unspec)
    assert got is not None and not got[0].local and got[0].family == "unknown"


def test_v2_unix_and_udp_families() -> None:
    body = bytes(216)
    got = parse_proxy_header(V2_SIGNATURE + b"\x21\x31" + struct.pack("!H", 216) + body)
    assert got is not None and got[0].family == "unix" and got[0].src is None
    body4 = bytes([10, 0, 0, 1, 10, 0, 0, 2]) + struct.pack("!HH", 53, 5353)
    got = parse_proxy_header(V2_SIGNATURE + b"\x21\x12" + struct.pack("!H", 12) + body4)
    assert got is not None and got[0].family == "udp4" and got[0].src == ("10.0.0.1", 53)


def test_v2_tlvs_are_skipped() -> None:
    base = build_v2(("203.0.113.7", 1), ("127.0.0.1", 2))
    tlvs = b"\x01\x00\x02h2" + b"\x04\x00\x00" + b"\xea\x00\x03abc"  # ALPN, NOOP, custom
    raw = base[:14] + struct.pack("!H", 12 + len(tlvs)) + base[16:] + tlvs
    got = parse_proxy_header(raw + b"data")
    assert got is not None and got[1] == len(raw) and got[0].src == ("203.0.113.7", 1)


@pytest.mark.parametrize(
    "tlvs", [b"\x01", b"\x01\x00", b"\x01\x00\x05abc", b"\x04\x00\x00\x01\x00\x09"]
)
def test_v2_truncated_tlvs_are_refused(tlvs: bytes) -> None:
    base = build_v2(("203.0.113.7", 1), ("127.0.0.1", 2))
    raw = base[:14] + struct.pack("!H", 12 + len(tlvs)) + base[16:] + tlvs
    with pytest.raises(RemoteProtocolError, match="TLV"):
        parse_proxy_header(raw)


def test_incremental_needs_more_until_complete() -> None:
    for raw in (
        build_v1(("203.0.113.7", 51000), ("192.0.2.1", 443)),
        build_v2(("2001:db8::7", 5), ("::1", 6)),
    ):
        for cut in range(len(raw)):
            assert parse_proxy_header(raw[:cut]) is None, cut
        assert parse_proxy_header(raw) is not None


def test_detect() -> None:
    assert detect(b"") is None
    assert detect(b"PRO") is None
    assert detect(b"\r\n\r\n\x00") is None
    assert detect(b"PROXY ") is True
    assert detect(V2_SIGNATURE) is True
    assert detect(b"\x01\x00") is False  # a relay request
    assert detect(b"GET / HTTP/1.1\r\n") is False
    assert detect(b"\x16\x03\x01") is False  # TLS
    assert detect(b"\r\n\r\nX") is False


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", "CRLF"),
        (b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", "bad PROXY v1"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "bad PROXY v1"),
        (b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n", "not IPv4"),
        (b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n", "not IPv6"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", "out of range"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", "bad PROXY v1 port"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", "bad PROXY v1 port"),
        (b"PROXY TCP4 999.2.3.4 5.6.7.8 1 2\r\n", "bad PROXY v1 address"),
        (b"PROXY " + b"A" * 200, "longer than 107"),
        (b"PROXY TCP4 \xff\r\n", "ASCII"),
        (b"GET / HTTP/1.1\r\n", "not a PROXY"),
        (V2_SIGNATURE + b"\x11\x11\x00\x0c" + bytes(12), "version nibble"),
        (V2_SIGNATURE + b"\x22\x11\x00\x0c" + bytes(12), "neither LOCAL nor PROXY"),
        (V2_SIGNATURE + b"\x21\x41\x00\x0c" + bytes(12), "family byte"),
        (V2_SIGNATURE + b"\x21\x13\x00\x0c" + bytes(12), "family byte"),
        (V2_SIGNATURE + b"\x21\x11\x00\x08" + bytes(8), "too short"),
        (V2_SIGNATURE + b"\x21\x21\x00\x0c" + bytes(12), "too short"),
    ],
)
def test_malformed_headers_are_refused(raw: bytes, why: str) -> None:
    with pytest.raises(RemoteProtocolError, match=why):
        parse_proxy_header(raw)


def test_v2_length_cap_is_checked_before_the_body_arrives() -> None:
    head = V2_SIGNATURE + b"\x21\x11" + struct.pack("!H", 60000)
    with pytest.raises(RemoteProtocolError, match="exceeds 2048"):
        parse_proxy_header(head)
    assert parse_proxy_header(head[:15]) is None
    raw = build_v2(("1.2.3.4", 1), ("5.6.7.8", 2))
    with pytest.raises(RemoteProtocolError, match="exceeds 20"):
        parse_proxy_header(raw, max_len=20)


def test_builder_refuses_what_it_cannot_carry() -> None:
    with pytest.raises(LocalProtocolError, match="IP addresses"):
        build_v2(("example.com", 1), ("127.0.0.1", 2))
    with pytest.raises(LocalProtocolError, match="version 3"):
        build(3, None, None)
    assert build(1, None, None) == b"PROXY UNKNOWN\r\n"
    assert build(2, None, None) == V2_SIGNATURE + b"\x21\x00\x00\x00"
