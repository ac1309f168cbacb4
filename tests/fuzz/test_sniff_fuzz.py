"""Fuzzing the sniffers: only the three result kinds, never an exception, decisions are final."""

from __future__ import annotations

import itertools
import ssl
import struct
from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from burrow.proto.sniff import (
    NEED_MORE,
    NeedMore,
    NotMatched,
    Sniffed,
    SniffResult,
    sniff,
    sniff_http,
    sniff_tls,
)

FUZZ = settings(max_examples=300, deadline=None)
SNIFFERS: list[Callable[[bytes], SniffResult]] = [sniff, sniff_http, sniff_tls]


def real_hello() -> bytes:
    ctx = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="fuzz.example.com")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


HELLO = real_hello()
HANDSHAKE = HELLO[5:]

# Inputs that get past the first bytes, so random data does not almost always die at byte 0.
http_like = st.builds(
    lambda method, target, version, lines, end: (
        method + b" " + target + b" " + version + b"".join(lines) + end
    ),
    st.sampled_from([b"GET", b"POST", b"M-SEARCH", b"", b"G\x00T"]),
    st.sampled_from([b"/", b"*", b"http://a/", b"", b"/\xff"]),
    st.sampled_from([b"HTTP/1.1\r\n", b"HTTP/1.0\n", b"HTTP/2.0\r\n", b"HTTP/1.1"]),
    st.lists(
        st.one_of(
            st.sampled_from(
                [
                    b"Host: a.example\r\n",
                    b"host:b\n",
                    b"Host: x\r\nHost: y\r\n",
                    b" folded\r\n",
                    b"X:\x01\r\n",
                    b"\r\n",
                ]
            ),
            st.binary(max_size=30),
        ),
        max_size=6,
    ),
    st.sampled_from([b"\r\n", b"\n", b"", b"\r"]),
)
tls_like = st.builds(
    lambda prefix, tail: prefix + tail,
    st.sampled_from(
        [b"\x16\x03\x01", b"\x16\x03\x03\x00\x30\x01", b"\x16\x03\x00", HELLO[:43], HELLO[:80]]
    ),
    st.binary(max_size=400),
)
wire = st.one_of(st.binary(max_size=600), http_like, tls_like)


def prefixes(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {len(data)})
    return [data[:p] for p in points]


def check_kind(result: SniffResult) -> None:
    assert isinstance(result, (Sniffed, NeedMore, NotMatched))
    if isinstance(result, Sniffed):
        assert result.protocol in ("http", "tls")
        assert result.host == "" or (result.host.isascii() and result.host.isprintable())


@FUZZ
@given(data=wire, cuts=st.lists(st.integers(0, 10**6), max_size=12))
def test_results_are_final_over_growing_input(data: bytes, cuts: list[int]) -> None:
    """What the peek loop relies on: once a sniffer decides, more bytes never change it."""
    for sniffer in SNIFFERS:
        decided: SniffResult | None = None
        for prefix in prefixes(data, cuts):
            result = sniffer(prefix)
            check_kind(result)
            if decided is not None:
                assert result == decided, (sniffer.__name__, prefix)
            elif result is not NEED_MORE:
                decided = result


@FUZZ
@given(data=wire)
def test_every_buffer_type_gives_the_same_answer(data: bytes) -> None:
    for sniffer in SNIFFERS:
        expected = sniffer(data)
        assert sniffer(bytearray(data)) == expected
        assert sniffer(memoryview(data)) == expected


@FUZZ
@given(
    cuts=st.lists(st.integers(1, len(HANDSHAKE) - 1), max_size=4, unique=True),
    version=st.sampled_from([0x0300, 0x0301, 0x0302, 0x0303, 0x0304]),
    trailing=st.binary(max_size=20),
)
def test_real_hello_survives_any_record_fragmentation(
    cuts: list[int], version: int, trailing: bytes
) -> None:
    points = [0, *sorted(cuts), len(HANDSHAKE)]
    wire = b"".join(
        struct.pack(">BHH", 0x16, version, b - a) + HANDSHAKE[a:b]
        for a, b in itertools.pairwise(points)
    )
    assert sniff(wire + trailing) == Sniffed("tls", "fuzz.example.com")
    assert sniff(wire[:-1]) is NEED_MORE


@FUZZ
@given(pos=st.integers(0, len(HELLO) - 1), value=st.integers(0, 255))
def test_corrupted_real_hello(pos: int, value: int) -> None:
    broken = bytearray(HELLO)
    broken[pos] = value
    for sniffer in SNIFFERS:
        check_kind(sniffer(bytes(broken)))
