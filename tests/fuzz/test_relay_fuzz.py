"""Fuzzing the relay codec, addresses and datagram framing: results or RemoteProtocolError only."""

from __future__ import annotations

import ipaddress
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from burrow.common.ids import TunnelId
from burrow.proto.addr import ATYP_DOMAIN, ATYP_IPV4, ATYP_IPV6, Address, split_hostport
from burrow.proto.errors import LocalProtocolError, RemoteProtocolError
from burrow.proto.need import NEED_DATA, NeedData
from burrow.proto.relay import (
    MAX_MESSAGE_LEN,
    RelayReader,
    RelayRequest,
    RelayResponse,
    parse_request,
    parse_response,
)
from burrow.proto.relay_features import (
    AddrFeature,
    Feature,
    NetworkFeature,
    TunnelFeature,
    UnknownFeature,
    UserAuthFeature,
    decode_features,
    encode_features,
)
from burrow.proto.stream_header import StreamHeader, parse_stream_header
from burrow.proto.udp import DatagramReader, frame_datagram

FUZZ = settings(max_examples=300, deadline=None)


def pieces(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)])]


# Feature TLVs drawn near the interesting space (known types, short and long LENs, payloads of
# any size) so that random input gets past the version byte and into the feature decoders.
raw_feature = st.builds(
    lambda t, n, body: struct.pack(">BH", t, n) + body,
    st.sampled_from([0, 1, 2, 3, 4, 5, 255]),
    st.sampled_from([0, 1, 2, 3, 4, 7, 16, 19, 20, 24, 65535]),
    st.binary(max_size=40),
)
raw_block = st.lists(raw_feature, max_size=5).map(b"".join)


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    block = draw(st.one_of(raw_block, st.binary(max_size=60)))
    fealen = draw(st.one_of(st.just(len(block)), st.integers(0, 0xFFFF)))
    first = draw(st.sampled_from([1, 1, 1, 0, 2, 255]))
    tail = draw(st.binary(max_size=20))
    return struct.pack(">BBH", first, draw(st.integers(0, 255)), fealen) + block + tail


wire_bytes = st.one_of(st.binary(max_size=200), messages())
cut_points = st.lists(st.integers(0, 1000), max_size=8)


@FUZZ
@given(data=wire_bytes, cuts=cut_points, kind=st.sampled_from(["request", "response"]))
def test_reader_outcomes(data: bytes, cuts: list[int], kind: str) -> None:
    reader = RelayReader(kind)  # type: ignore[arg-type]
    whole = parse_request if kind == "request" else parse_response
    try:
        expected = whole(data)
    except RemoteProtocolError:
        expected = None
        failed = True
    else:
        failed = False
    event: object = NEED_DATA
    try:
        for piece in pieces(data, cuts):
            reader.receive_data(piece)
            assert reader.buffered <= MAX_MESSAGE_LEN
            event = reader.next_event()
    except RemoteProtocolError:
        assert failed  # the one-shot parser fails on the same bytes
        return
    assert not failed
    if isinstance(event, NeedData):
        assert expected is None
        assert reader.trailing() == b""
        return
    assert isinstance(event, RelayRequest if kind == "request" else RelayResponse)
    assert expected is not None and expected[0] == event
    assert reader.trailing() == data[expected[1] :]


@FUZZ
@given(data=wire_bytes)
def test_parse_outcomes(data: bytes) -> None:
    for parse in (parse_request, parse_response, parse_stream_header):
        try:
            result = parse(data)
        except RemoteProtocolError:
            continue
        if result is not None:
            _, used = result
            assert 4 <= used <= min(len(data), MAX_MESSAGE_LEN)


@FUZZ
@given(block=st.one_of(raw_block, st.binary(max_size=100)))
def test_decode_features_outcomes(block: bytes) -> None:
    try:
        features = decode_features(memoryview(block))
    except RemoteProtocolError as exc:
        assert exc.status is None
        return
    assert all(
        isinstance(f, (UserAuthFeature, AddrFeature, TunnelFeature, NetworkFeature, UnknownFeature))
        for f in features
    )


@FUZZ
@given(
    data=st.one_of(
        st.binary(max_size=30),
        st.builds(
            lambda a, b: bytes((a,)) + b,
            st.sampled_from([0, 1, 2, 3, 4, 5]),
            st.binary(max_size=30),
        ),
    )
)
def test_address_decode_outcomes(data: bytes) -> None:
    try:
        addr = Address.decode(data)
    except RemoteProtocolError:
        return
    assert 0 <= addr.port <= 0xFFFF
    assert Address.decode(addr.encode()) == addr


@FUZZ
@given(text=st.text(max_size=40))
def test_hostport_text_never_crashes(text: str) -> None:
    _host, port = split_hostport(text)
    assert 0 <= port <= 0xFFFF
    addr = Address.from_hostport(text)
    try:
        wire = addr.encode()
    except LocalProtocolError:
        return
    assert Address.decode(wire).port == port


@FUZZ
@given(data=st.binary(max_size=300), cuts=cut_points)
def test_datagram_reader_outcomes(data: bytes, cuts: list[int]) -> None:
    reader = DatagramReader()
    total = 0
    for piece in pieces(data, cuts):
        reader.receive_data(piece)
        while not isinstance(d := reader.next_datagram(), NeedData):
            total += 2 + len(d)
    assert total + reader.buffered == len(data)


@FUZZ
@given(datagrams=st.lists(st.binary(max_size=300), max_size=6), cuts=cut_points)
def test_datagram_round_trip(datagrams: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(frame_datagram(d) for d in datagrams)
    reader = DatagramReader()
    got = []
    for piece in pieces(stream, cuts):
        reader.receive_data(piece)
        while not isinstance(d := reader.next_datagram(), NeedData):
            got.append(d)
    assert got == datagrams and reader.buffered == 0


@FUZZ
@given(data=st.binary(max_size=300), cuts=cut_points, mixed=st.lists(st.booleans(), max_size=8))
def test_datagram_feed_matches_next_datagram(
    data: bytes, cuts: list[int], mixed: list[bool]
) -> None:
    """feed() (the bulk path) gives what receive_data() + next_datagram() give, mixed freely."""
    slow, fast = DatagramReader(), DatagramReader()
    want: list[bytes] = []
    got: list[bytes] = []
    for i, piece in enumerate(pieces(data, cuts)):
        slow.receive_data(piece)
        while not isinstance(d := slow.next_datagram(), NeedData):
            want.append(d)
        if mixed[i] if i < len(mixed) else False:
            fast.receive_data(memoryview(piece))
            while not isinstance(d := fast.next_datagram(), NeedData):
                got.append(d)
        else:
            got += fast.feed(memoryview(piece) if i % 2 else piece)
        assert got == want and fast.buffered == slow.buffered
    assert all(type(d) is bytes for d in got)


# --- round trip of valid messages --------------------------------------------------------------

wire_text = st.binary(max_size=255).map(lambda b: b.decode("utf-8", "surrogateescape"))
ports = st.integers(0, 0xFFFF)
ipv6 = st.ip_addresses(v=6).filter(lambda ip: ip.ipv4_mapped is None)  # type: ignore[union-attr]
addresses = st.one_of(
    st.builds(lambda ip, p: Address(str(ip), p, ATYP_IPV4), st.ip_addresses(v=4), ports),
    st.builds(lambda ip, p: Address(str(ip), p, ATYP_IPV6), ipv6, ports),
    st.builds(lambda h, p: Address(h, p, ATYP_DOMAIN), wire_text, ports),
)
tunnel_ids = st.builds(
    TunnelId, st.binary(min_size=16, max_size=16), st.integers(0, 255), st.integers(0, 255)
)
features: st.SearchStrategy[Feature] = st.one_of(
    st.builds(UserAuthFeature, wire_text, wire_text),
    st.builds(AddrFeature, addresses),
    st.builds(TunnelFeature, tunnel_ids, st.sampled_from([16, 20])),
    st.builds(NetworkFeature, ports),
    st.builds(UnknownFeature, st.sampled_from([0, 5, 6, 127, 255]), st.binary(max_size=50)),
)
feature_tuples = st.lists(features, max_size=6).map(tuple)


def _same_ids(a: tuple[Feature, ...], b: tuple[Feature, ...]) -> None:
    # TunnelId equality looks at the UUID only; the 20-byte form must also keep flag and weight.
    for fa, fb in zip(a, b):
        if isinstance(fa, TunnelFeature) and isinstance(fb, TunnelFeature) and fa.length == 20:
            assert fa.tunnel_id.to_wire(20) == fb.tunnel_id.to_wire(20)


@FUZZ
@given(cmd=st.integers(0, 255), feats=feature_tuples, tail=st.binary(max_size=10))
def test_request_round_trip(cmd: int, feats: tuple[Feature, ...], tail: bytes) -> None:
    msg = RelayRequest(cmd, feats)
    wire = msg.encode()
    assert parse_request(wire + tail) == (msg, len(wire))
    decoded = parse_request(wire)
    assert decoded is not None
    _same_ids(feats, decoded[0].features)
    assert decoded[0].encode() == wire


@FUZZ
@given(status=st.integers(0, 255), feats=feature_tuples, cuts=cut_points)
def test_response_round_trip(status: int, feats: tuple[Feature, ...], cuts: list[int]) -> None:
    msg = RelayResponse(status, feats)
    wire = msg.encode()
    reader = RelayReader("response")
    for piece in pieces(wire, cuts):
        reader.receive_data(piece)
    assert reader.next_event() == msg
    assert encode_features(decode_features(wire[4:])) == wire[4:]


@FUZZ
@given(
    src=st.one_of(st.none(), addresses.filter(lambda a: a.atyp != ATYP_DOMAIN or not a.host)),
    dst=st.one_of(st.none(), addresses),
)
def test_stream_header_round_trip(src: Address | None, dst: Address | None) -> None:
    wire = StreamHeader(src, dst).encode()
    parsed = parse_stream_header(wire)
    assert parsed is not None and parsed[1] == len(wire)
    header = parsed[0]
    assert header.src == (src if src is not None else Address("", 0, ATYP_DOMAIN))
    assert header.dst == dst


def test_ipv6_rendering_matches_canonical_text() -> None:
    # the round-trip strategies rely on decode rendering IPv6 as Python's compressed form
    for text in ("2001:db8::1", "::", "::1", "1::", "1:0:0:1:0:0:0:1", "fe80::1:2"):
        ip = ipaddress.IPv6Address(text)
        assert Address.decode(Address(text, 1, ATYP_IPV6).encode()).host == str(ip)
