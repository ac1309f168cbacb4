"""Relay addresses: gost's host:port rules and the Addr feature DATA (docs/protocol.md)."""

from __future__ import annotations

import pytest

from burrow.proto.addr import (
    ATYP_DOMAIN,
    ATYP_IPV4,
    ATYP_IPV6,
    Address,
    join_hostport,
    split_hostport,
)
from burrow.proto.errors import LocalProtocolError, RemoteProtocolError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("example.com:80", ("example.com", 80)),
        ("127.0.0.1:54321", ("127.0.0.1", 54321)),
        ("[::1]:443", ("::1", 443)),
        ("[fe80::1%eth0]:22", ("fe80::1%eth0", 22)),
        (":0", ("", 0)),
        (":8080", ("", 8080)),
        ("host:", ("host", 0)),
        # unsplittable: the whole text is the host, port 0
        ("", ("", 0)),
        ("example.com", ("example.com", 0)),
        ("::1", ("::1", 0)),
        ("[::1]", ("[::1]", 0)),
        ("[::1]x:80", ("[::1]x:80", 0)),
        ("[::1]:80:90", ("[::1]:80:90", 0)),
        ("a]:80", ("a]:80", 0)),
        ("a[b:80", ("a[b:80", 0)),
        ("[a:80", ("[a:80", 0)),
        # strconv.Atoi then uint16(): bad text gives 0, big or negative values wrap
        ("host:http", ("host", 0)),
        ("host: 80", ("host", 0)),
        ("host:8_0", ("host", 0)),
        ("host:٨٠", ("host", 0)),
        ("host:+80", ("host", 80)),
        ("host:0080", ("host", 80)),
        ("host:65535", ("host", 65535)),
        ("host:65536", ("host", 0)),
        ("host:70000", ("host", 4464)),
        ("host:-1", ("host", 65535)),
        ("host:9223372036854775807", ("host", 65535)),
        ("host:9223372036854775808", ("host", 0)),
    ],
)
def test_split_hostport_follows_gost(text: str, expected: tuple[str, int]) -> None:
    assert split_hostport(text) == expected


def test_join_hostport_brackets_ipv6() -> None:
    assert join_hostport("::1", 80) == "[::1]:80"
    assert join_hostport("example.com", 443) == "example.com:443"
    assert join_hostport("", 0) == ":0"
    assert Address("2001:db8::1", 8080, ATYP_IPV6).hostport() == "[2001:db8::1]:8080"
    assert Address("10.0.0.1", 22, ATYP_IPV4).hostport() == "10.0.0.1:22"


@pytest.mark.parametrize(
    ("text", "atyp"),
    [
        ("127.0.0.1:54321", ATYP_IPV4),
        ("[::ffff:1.2.3.4]:80", ATYP_IPV4),  # IPv4-mapped text is IPv4 for gost (To4 != nil)
        ("[::1]:80", ATYP_IPV6),
        ("[2001:db8::1]:80", ATYP_IPV6),
        ("example.com:80", ATYP_DOMAIN),
        (":0", ATYP_DOMAIN),
        ("", ATYP_DOMAIN),
        ("[fe80::1%eth0]:22", ATYP_DOMAIN),  # Go's ParseIP takes no zone
        ("1.2.3.04:80", ATYP_DOMAIN),  # nor leading zeros
        ("1.2.3:80", ATYP_DOMAIN),
        ("5ca1ab1e0000abcd:0", ATYP_DOMAIN),  # gost's md5 endpoint host (the BIND reply)
        ("1234:0", ATYP_DOMAIN),  # digits only: not an IPv4 literal
        ("1e100.net:443", ATYP_DOMAIN),
        ("255.255.255.255:1", ATYP_IPV4),
    ],
)
def test_from_hostport_chooses_atyp(text: str, atyp: int) -> None:
    assert Address.from_hostport(text).atyp == atyp


def test_force_domain_keeps_ip_literal_as_text() -> None:
    addr = Address.from_hostport("10.0.0.5:22", force_domain=True)
    assert addr == Address("10.0.0.5", 22, ATYP_DOMAIN)
    assert addr.encode() == bytes.fromhex("03 08") + b"10.0.0.5" + bytes.fromhex("0016")
    assert Address.of("::1", 1, force_domain=True).atyp == ATYP_DOMAIN
    assert Address.of("::1", 1) == Address("::1", 1, ATYP_IPV6)


@pytest.mark.parametrize(
    ("text", "hexdata"),
    [
        ("127.0.0.1:54321", "01 7f 00 00 01 d4 31"),
        ("0.0.0.0:0", "01 00 00 00 00 00 00"),
        (":0", "03 00 00 00"),
        ("example.com:80", "03 0b 65 78 61 6d 70 6c 65 2e 63 6f 6d 00 50"),
        ("203.0.113.7:51000", "01 cb 00 71 07 c7 38"),
        ("[::ffff:1.2.3.4]:80", "01 01 02 03 04 00 50"),
        ("[::1]:80", "04" + " 00" * 15 + " 01 00 50"),
        ("[2001:db8::1]:65535", "04 20 01 0d b8" + " 00" * 10 + " 00 01 ff ff"),
    ],
)
def test_spec_examples_encode_and_decode(text: str, hexdata: str) -> None:
    wire = bytes.fromhex(hexdata)
    addr = Address.from_hostport(text)
    assert addr.encode() == wire
    decoded = Address.decode(wire)
    assert decoded.encode() == wire
    assert decoded.port == addr.port
    assert decoded.atyp == addr.atyp


def test_decode_renders_like_go() -> None:
    v6 = bytes.fromhex("04 20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 01 01 bb")
    assert Address.decode(v6) == Address("2001:db8::1", 443, ATYP_IPV6)
    # Go prints an IPv4-mapped IPv6 address as dotted IPv4 but the ATYP stays 4, so the
    # re-encoded bytes are the original ones.
    mapped = bytes.fromhex("04" + "00" * 10 + "ffff" + "c0a80001" + "0050")
    decoded = Address.decode(mapped)
    assert decoded == Address("192.168.0.1", 80, ATYP_IPV6)
    assert decoded.encode() == mapped
    assert Address.decode(bytes.fromhex("01 0a 00 00 01 00 16")).hostport() == "10.0.0.1:22"


def test_decode_ignores_extra_bytes() -> None:
    assert Address.decode(bytes.fromhex("01 7f 00 00 01 d4 31 ff ff")) == Address(
        "127.0.0.1", 54321, ATYP_IPV4
    )
    assert Address.decode(bytes.fromhex("03 01 61 00 50 99")) == Address("a", 80, ATYP_DOMAIN)
    assert Address.decode(memoryview(bytes.fromhex("03 00 00 07"))) == Address("", 7, ATYP_DOMAIN)


@pytest.mark.parametrize(
    "hexdata",
    [
        "",
        "01",
        "03 00 00",  # < 4 bytes
        "01 7f 00 00 01 d4",  # IPv4 needs 7
        "04" + " 00" * 17,  # IPv6 needs 19
        "03 05 61 62 63 00",  # domain needs 4 + 5
        "00 00 00 00 00 00 00",  # bad ATYP
        "02 7f 00 00 01 00 50",
        "05" + " 00" * 18,
        "ff 00 00 00",
    ],
)
def test_decode_errors(hexdata: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        Address.decode(bytes.fromhex(hexdata))
    assert info.value.status is None


def test_domain_bytes_round_trip_verbatim() -> None:
    raw = b"\xff\xfeBad.Host\x00"
    wire = bytes((ATYP_DOMAIN, len(raw))) + raw + b"\x00\x01"
    addr = Address.decode(wire)
    assert addr.encode() == wire
    assert Address.of("Ünïcode.example", 1).encode()[1] == len("Ünïcode.example".encode())


def test_domain_length_limit() -> None:
    assert len(Address.of("a" * 255, 1).encode()) == 1 + 1 + 255 + 2
    with pytest.raises(LocalProtocolError):
        Address.of("a" * 256, 1).encode()
    with pytest.raises(LocalProtocolError):
        Address.of("é" * 128, 1).encode()  # 256 bytes in UTF-8


@pytest.mark.parametrize("port", [-1, 65536, 1 << 40])
def test_port_out_of_range_is_local_error(port: int) -> None:
    with pytest.raises(LocalProtocolError):
        Address.of("example.com", port).encode()


def test_unencodable_host_and_bad_atyp_are_local_errors() -> None:
    with pytest.raises(LocalProtocolError):
        Address("\ud800", 1, ATYP_DOMAIN).encode()  # a lone surrogate outside the escape range
    with pytest.raises(LocalProtocolError):
        Address("example.com", 1, 2).encode()


def test_ip_atyp_with_unparsable_host_writes_zero_address() -> None:
    assert Address("nope", 80, ATYP_IPV4).encode() == bytes.fromhex("01 00 00 00 00 00 50")
    assert Address("nope", 80, ATYP_IPV6).encode() == bytes.fromhex("04" + "00" * 16 + "0050")
    # a real IPv6 address cannot be written as IPv4
    assert Address("::1", 80, ATYP_IPV4).encode() == bytes.fromhex("01 00 00 00 00 00 50")
    # an IPv4 text under ATYP 6 is written IPv4-mapped, like Go's To16
    assert Address("1.2.3.4", 80, ATYP_IPV6).encode() == bytes.fromhex(
        "04" + "00" * 10 + "ffff 01020304 0050"
    )
