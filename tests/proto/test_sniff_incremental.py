"""Incremental sniffing (issue 16 item 6): same answers as one-shot, cost linear in bytes."""

from __future__ import annotations

import struct
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from burrow.proto.sniff import NEED_MORE, Sniffed, Sniffer, sniff


def client_hello(host: bytes, pad: int = 0) -> bytes:
    """A minimal ClientHello handshake message with SNI and a padding extension (type 21)."""
    name = b"\x00" + struct.pack("!H", len(host)) + host
    sni_data = struct.pack("!H", len(name)) + name
    exts = struct.pack("!HH", 0, len(sni_data)) + sni_data
    exts += struct.pack("!HH", 21, pad) + bytes(pad)
    body = b"\x03\x03" + bytes(32) + b"\x00" + b"\x00\x02\x13\x01" + b"\x01\x00"
    body += struct.pack("!H", len(exts)) + exts
    return b"\x01" + len(body).to_bytes(3, "big") + body


def records(msg: bytes, size: int) -> bytes:
    """``msg`` as TLS handshake records of ``size`` bytes each."""
    out = bytearray()
    for i in range(0, len(msg), size):
        chunk = msg[i : i + size]
        out += b"\x16\x03\x01" + struct.pack("!H", len(chunk)) + chunk
    return bytes(out)


def feed_bytewise(wire: bytes) -> tuple[object, float]:
    """Feed one byte per call (the worst trickle); (result, seconds)."""
    sniffer = Sniffer()
    buf = bytearray()
    result: object = NEED_MORE
    start = time.process_time()
    for b in wire:
        buf.append(b)
        result = sniffer.feed(buf)
        if result is not NEED_MORE:
            break
    return result, time.process_time() - start


def test_one_byte_records_cost_linear() -> None:
    """4x the hello in 1-byte records, fed a byte at a time, costs far less than 16x."""
    small = records(client_hello(b"a.example", pad=1000), 1)
    big = records(client_hello(b"a.example", pad=4000), 1)
    r_small, t_small = feed_bytewise(small)
    r_big, t_big = feed_bytewise(big)
    assert r_small == r_big == Sniffed("tls", "a.example")
    # Linear: about 4x. The old parser re-walked every record per read (16x and more).
    assert t_big < 8 * max(t_small, 1e-3), (t_small, t_big)


def test_http_trickle_cost_linear() -> None:
    """A head of many headers fed a byte at a time: about 4x for 4x the headers."""

    def head(n: int) -> bytes:
        return b"GET / HTTP/1.1\r\n" + b"X-A: b\r\n" * n + b"Host: h.example\r\n\r\n"

    r_small, t_small = feed_bytewise(head(300))
    r_big, t_big = feed_bytewise(head(1200))
    assert r_small == r_big == Sniffed("http", "h.example")
    assert t_big < 8 * max(t_small, 1e-3), (t_small, t_big)


def _inputs() -> st.SearchStrategy[bytes]:
    hello = st.builds(
        lambda host, pad, size: records(client_hello(host, pad), size),
        st.binary(min_size=1, max_size=20).filter(lambda h: all(0x21 <= c <= 0x7E for c in h)),
        st.integers(0, 300),
        st.integers(1, 64),
    )
    http = st.lists(
        st.sampled_from(
            [b"GET / HTTP/1.1\r\n", b"Host: a.b\r\n", b"X: y\n", b"\r\n", b"bad line\r\n", b" f"]
        ),
        max_size=8,
    ).map(b"".join)
    return st.one_of(hello, http, st.binary(max_size=200))


@settings(max_examples=300, deadline=None)
@given(data=_inputs(), cuts=st.lists(st.integers(0, 4000), max_size=12))
def test_incremental_equals_one_shot(data: bytes, cuts: list[int]) -> None:
    """For every split into reads, each answer equals sniff() of the same prefix."""
    sniffer = Sniffer()
    points = sorted({min(c, len(data)) for c in cuts} | {len(data)})
    for end in points:
        assert sniffer.feed(data[:end]) == sniff(data[:end]), (data, end)
