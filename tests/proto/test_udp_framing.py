"""UDP over a stream: 2-byte big-endian length + payload (docs/protocol.md, UDP framing)."""

from __future__ import annotations

import pytest

from burrow.proto.errors import LocalProtocolError
from burrow.proto.need import NEED_DATA
from burrow.proto.udp import MAX_DATAGRAM, DatagramReader, frame_datagram, frame_header


def test_frame_layout() -> None:
    assert frame_datagram(b"abc") == b"\x00\x03abc"
    assert frame_datagram(memoryview(b"xy")) == b"\x00\x02xy"
    assert frame_datagram(b"") == b"\x00\x00"
    assert frame_header(258) == b"\x01\x02"
    big = bytes(range(256)) * 255 + bytes(255)
    assert len(big) == MAX_DATAGRAM
    assert frame_datagram(big)[:2] == b"\xff\xff"


@pytest.mark.parametrize("size", [MAX_DATAGRAM + 1, 1 << 20])
def test_too_big_is_local_error(size: int) -> None:
    with pytest.raises(LocalProtocolError):
        frame_datagram(bytes(size))
    with pytest.raises(LocalProtocolError):
        frame_header(size)
    with pytest.raises(LocalProtocolError):
        frame_header(-1)


def test_reader_every_split() -> None:
    datagrams = [b"first", b"", b"\x00\x01", b"z" * 300]
    stream = b"".join(frame_datagram(d) for d in datagrams)
    for cut in range(len(stream) + 1):
        reader = DatagramReader()
        got = []
        for piece in (stream[:cut], stream[cut:]):
            reader.receive_data(piece)
            while (d := reader.next_datagram()) is not NEED_DATA:
                got.append(d)
        assert got == datagrams, cut
        assert reader.buffered == 0


def test_reader_byte_by_byte_and_buffered_count() -> None:
    reader = DatagramReader()
    framed = frame_datagram(b"hello")
    for i, byte in enumerate(framed[:-1]):
        reader.receive_data(bytes((byte,)))
        assert reader.next_datagram() is NEED_DATA
        assert reader.buffered == i + 1
    reader.receive_data(framed[-1:] + b"\x00")
    assert reader.next_datagram() == b"hello"
    assert reader.buffered == 1
    assert reader.next_datagram() is NEED_DATA


def test_reader_largest_datagram_and_memoryview_input() -> None:
    payload = bytes(range(256)) * 255 + b"\x07" * 255
    reader = DatagramReader()
    framed = memoryview(frame_datagram(payload) + frame_datagram(b"after"))
    reader.receive_data(framed[:40000])
    assert reader.next_datagram() is NEED_DATA
    reader.receive_data(framed[40000:])
    assert reader.next_datagram() == payload
    assert reader.next_datagram() == b"after"
    assert reader.next_datagram() is NEED_DATA and reader.buffered == 0


def test_returned_datagrams_are_independent_copies() -> None:
    reader = DatagramReader()
    reader.receive_data(b"\x00\x02ab\x00\x02c")
    first = reader.next_datagram()
    reader.receive_data(b"d")
    assert first == b"ab" and reader.next_datagram() == b"cd"


def test_feed_every_split_and_largest_datagram() -> None:
    payload = bytes(range(256)) * 255 + b"\x07" * 255
    datagrams = [b"first", b"", b"\x00\x01", b"z" * 300, payload]
    stream = b"".join(frame_datagram(d) for d in datagrams)
    for cut in [*range(320), 40000, len(stream) - 1, len(stream)]:
        reader = DatagramReader()
        got = reader.feed(stream[:cut]) + reader.feed(memoryview(stream)[cut:])
        assert got == datagrams, cut
        assert reader.buffered == 0
