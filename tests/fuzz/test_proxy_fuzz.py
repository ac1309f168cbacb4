"""Fuzzing the PROXY protocol parser: None, a header, or RemoteProtocolError; builders roundtrip."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from burrow.proto.errors import RemoteProtocolError
from burrow.proto.proxy_protocol import (
    V1_PREFIX,
    V2_SIGNATURE,
    build_v1,
    build_v2,
    parse_proxy_header,
)

FUZZ = settings(max_examples=400, deadline=None)

ipv4 = st.builds(lambda n: str(ipaddress.IPv4Address(n)), st.integers(0, 2**32 - 1))
ipv6 = st.builds(lambda n: str(ipaddress.IPv6Address(n)), st.integers(0, 2**128 - 1))
port = st.integers(0, 65535)
prefixes = st.sampled_from([b"", V1_PREFIX, V2_SIGNATURE, V2_SIGNATURE + b"\x21"])


@FUZZ
@given(prefix=prefixes, data=st.binary(max_size=300), cap=st.integers(16, 4096))
def test_parser_never_raises_anything_else(prefix: bytes, data: bytes, cap: int) -> None:
    raw = prefix + data
    try:
        got = parse_proxy_header(raw, max_len=cap)
    except RemoteProtocolError:
        return
    if got is not None:
        header, used = got
        assert 0 < used <= len(raw)
        assert used <= max(cap, 107)
        assert header.version in (1, 2)


@FUZZ
@given(
    family=st.sampled_from(["4", "6"]), data=st.data(), sp=port, dp=port,
    version=st.sampled_from([1, 2]), tail=st.binary(max_size=40),
)  # fmt: skip
def test_build_parse_roundtrip(
    family: str, data: st.DataObject, sp: int, dp: int, version: int, tail: bytes
) -> None:
    ips = ipv4 if family == "4" else ipv6
    src, dst = (data.draw(ips), sp), (data.draw(ips), dp)
    raw = build_v1(src, dst) if version == 1 else build_v2(src, dst)
    got = parse_proxy_header(raw + tail)
    assert got is not None
    header, used = got
    assert used == len(raw)

    # An IPv6 address that happens to be v4-mapped is read back as IPv4, by design.
    def norm(ip: str) -> str:
        a = ipaddress.ip_address(ip)
        m = getattr(a, "ipv4_mapped", None)
        return str(m) if m is not None else str(a)

    assert header.src == (norm(src[0]), sp) and header.dst == (norm(dst[0]), dp)


@FUZZ
@given(raw=st.binary(min_size=1, max_size=120), cut=st.integers(0, 119))
def test_prefix_of_a_valid_header_is_never_an_error(raw: bytes, cut: int) -> None:
    full = build_v2(("203.0.113.7", 1), ("127.0.0.1", 2)) + raw
    assert parse_proxy_header(full[: min(cut, 27)]) is None
