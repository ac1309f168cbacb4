"""Relay request/response codec: spec examples, every status, every framing error, splits."""

from __future__ import annotations

import pytest

from burrow.common.ids import TunnelId
from burrow.proto.addr import ATYP_DOMAIN, ATYP_IPV4, Address
from burrow.proto.errors import LocalProtocolError, RemoteProtocolError
from burrow.proto.flags import CMD_FLAG_UDP
from burrow.proto.need import NEED_DATA
from burrow.proto.relay import (
    CMD_MASK,
    MAX_MESSAGE_LEN,
    VERSION,
    Cmd,
    RelayReader,
    RelayRequest,
    RelayResponse,
    Status,
    parse_request,
    parse_response,
    status_text,
)
from burrow.proto.relay_features import (
    MAX_FEATURES_LEN,
    NETWORK_TCP,
    NETWORK_UDP,
    AddrFeature,
    FeatureType,
    NetworkFeature,
    TunnelFeature,
    UnknownFeature,
    UserAuthFeature,
    decode_features,
    encode_features,
    network_name,
)

TUNNEL = TunnelId.parse("4d21094e-b74c-4916-86c1-d9fa36ea677b")
CONNECTOR = TunnelId.parse("0b1a2c3d-4e5f-4061-8293-a4b5c6d7e8f9")
TUNNEL_HEX = "4d 21 09 4e b7 4c 49 16 86 c1 d9 fa 36 ea 67 7b"


def h(text: str) -> bytes:
    return bytes.fromhex(text)


# docs/protocol.md, BIND and tests/vectors/, byte for byte
RELAY_BIND = h(f"01 02 00 1a  02 00 04 03 00 00 00  03 00 10 {TUNNEL_HEX}")
RELAY_BIND_UDP = h(f"01 82 00 1a  02 00 04 03 00 00 00  03 00 10 {TUNNEL_HEX}")
TUNNEL_BIND = h(
    "01 02 00 2b  02 00 07 01 7f 00 00 01 d4 31  02 00 07 01 00 00 00 00 00 00"
    f"  03 00 14 {TUNNEL_HEX} 00 00 00 01"
)
BIND_REPLY = h(
    "01 00 00 2a  02 00 14 03 10 61 36 32 36 35 63 36 64 39 38 34 37 61 34 62 65 00 00"
    "  03 00 10 0b 1a 2c 3d 4e 5f 40 61 82 93 a4 b5 c6 d7 e8 f9"
)
VISITOR_CONNECT = h(
    "01 01 00 29  02 00 13 03 0f 73 73 68 2e 73 72 76 2d 32 2e 6c 6f 63 61 6c 00 00"
    f"  03 00 10 {TUNNEL_HEX}"
)
VISITOR_CONNECT_UDP = h(
    "01 81 00 2e  04 00 02 00 01  02 00 13 03 0f 73 73 68 2e 73 72 76 2d 32 2e 6c 6f 63 61 6c 00 00"
    f"  03 00 10 {TUNNEL_HEX}"
)
STREAM_HEADER = h(
    "01 00 00 1c 02 00 07 01 cb 00 71 07 c7 38"
    " 02 00 0f 03 0b 65 78 61 6d 70 6c 65 2e 63 6f 6d 00 50"
)
REQUESTS = [RELAY_BIND, RELAY_BIND_UDP, TUNNEL_BIND, VISITOR_CONNECT, VISITOR_CONNECT_UDP]
RESPONSES = [BIND_REPLY, STREAM_HEADER, h("01 00 00 00"), h("01 06 00 00")]


def test_relay_bind_example() -> None:
    req, used = parse_request(RELAY_BIND) or pytest.fail("incomplete")
    assert used == len(RELAY_BIND)
    assert req.command == Cmd.BIND and not req.udp_flag
    assert req.addrs == [Address("", 0, ATYP_DOMAIN)]
    assert req.tunnel_id == TUNNEL and req.tunnel_len == 16
    assert req.user_auth is None and req.network is None
    bind_addr = AddrFeature(Address.from_hostport(":0"))
    built = RelayRequest(Cmd.BIND, (bind_addr, TunnelFeature(TUNNEL)))
    assert built == req
    assert built.encode() == RELAY_BIND


def test_relay_bind_udp_example() -> None:
    req, _ = parse_request(RELAY_BIND_UDP) or pytest.fail("incomplete")
    assert req.cmd == 0x82 and req.command == Cmd.BIND and req.udp_flag
    assert RelayRequest(Cmd.BIND | CMD_FLAG_UDP, req.features).encode() == RELAY_BIND_UDP


def test_tunnel_bind_example() -> None:
    req, _ = parse_request(TUNNEL_BIND) or pytest.fail("incomplete")
    assert req.addrs == [Address("127.0.0.1", 54321, ATYP_IPV4), Address("0.0.0.0", 0, ATYP_IPV4)]
    tid = req.tunnel_id
    assert tid == TUNNEL and tid is not None and tid.weight == 1 and tid.flag == 0
    assert req.tunnel_len == 20
    built = RelayRequest(
        Cmd.BIND,
        (
            AddrFeature(Address.from_hostport("127.0.0.1:54321")),
            AddrFeature(Address.from_hostport("0.0.0.0:0")),
            TunnelFeature(TunnelId(TUNNEL.uuid, 0, 1), 20),
        ),
    )
    assert built.encode() == TUNNEL_BIND


def test_bind_reply_example() -> None:
    resp, used = parse_response(BIND_REPLY) or pytest.fail("incomplete")
    assert used == len(BIND_REPLY)
    assert resp.status == Status.OK
    assert resp.addrs == [Address("a6265c6d9847a4be", 0, ATYP_DOMAIN)]
    assert resp.connector_id == CONNECTOR
    built = RelayResponse(
        Status.OK,
        (AddrFeature(Address.from_hostport("a6265c6d9847a4be:0")), TunnelFeature(CONNECTOR)),
    )
    assert built.encode() == BIND_REPLY


def test_visitor_connect_examples() -> None:
    req, _ = parse_request(VISITOR_CONNECT) or pytest.fail("incomplete")
    assert req.command == Cmd.CONNECT and not req.udp_flag
    assert req.addrs == [Address("ssh.srv-2.local", 0, ATYP_DOMAIN)]
    assert req.tunnel_id == TUNNEL
    udp, _ = parse_request(VISITOR_CONNECT_UDP) or pytest.fail("incomplete")
    assert udp.cmd == 0x81 and udp.udp_flag and udp.network == NETWORK_UDP
    assert udp.features[1:] == req.features
    assert RelayRequest(0x81, (NetworkFeature(NETWORK_UDP), *req.features)).encode() == (
        VISITOR_CONNECT_UDP
    )


def test_stream_header_example_is_a_response() -> None:
    resp, _ = parse_response(STREAM_HEADER) or pytest.fail("incomplete")
    assert resp.addrs == [
        Address("203.0.113.7", 51000, ATYP_IPV4),
        Address("example.com", 80, ATYP_DOMAIN),
    ]
    assert resp.connector_id is None
    assert resp.encode() == STREAM_HEADER


def test_feature_examples_of_section_6() -> None:
    auth = h("01 00 0a 04 75 73 65 72 04 70 61 73 73")
    assert decode_features(auth) == [UserAuthFeature("user", "pass")]
    assert encode_features([UserAuthFeature("user", "pass")]) == auth
    net = h("04 00 02 00 01")
    assert decode_features(net) == [NetworkFeature(NETWORK_UDP)]
    assert encode_features([NetworkFeature(NETWORK_UDP)]) == net
    t16 = h(f"03 00 10 {TUNNEL_HEX}")
    t20 = h(f"03 00 14 {TUNNEL_HEX} 00 00 00 01")
    assert encode_features([TunnelFeature(TUNNEL)]) == t16
    assert encode_features([TunnelFeature(TunnelId(TUNNEL.uuid, weight=1), 20)]) == t20
    (f16,) = decode_features(t16)
    (f20,) = decode_features(t20)
    assert isinstance(f16, TunnelFeature) and f16.length == 16 and f16.tunnel_id.text == TUNNEL.text
    assert isinstance(f20, TunnelFeature) and f20.length == 20 and f20.tunnel_id.weight == 1


def test_private_and_udp_flags_travel_only_in_20_bytes() -> None:
    tid = TunnelId(CONNECTOR.uuid, flag=0x01, weight=7)
    (f20,) = decode_features(encode_features([TunnelFeature(tid, 20)]))
    assert isinstance(f20, TunnelFeature) and f20.tunnel_id.udp and f20.tunnel_id.weight == 7
    (f16,) = decode_features(encode_features([TunnelFeature(tid, 16)]))
    assert isinstance(f16, TunnelFeature) and not f16.tunnel_id.udp and f16.tunnel_id.weight == 0


@pytest.mark.parametrize("status", list(Status))
def test_every_status(status: Status) -> None:
    wire = RelayResponse(status).encode()
    assert wire == bytes((VERSION, status, 0, 0))
    resp, used = parse_response(wire) or pytest.fail("incomplete")
    assert resp == RelayResponse(status) and used == 4
    assert status_text(status).startswith(f"{int(status)} ")


def test_status_text() -> None:
    assert status_text(6) == "6 Host Unreachable"
    assert status_text(Status.SERVICE_UNAVAILABLE) == "5 Service Unavailable"
    assert status_text(0) == "0 OK"
    assert status_text(8) == "8 Internal Server Error"
    assert status_text(200) == "200 Unknown Status"


@pytest.mark.parametrize(
    ("cmd", "command", "udp"),
    [(0x01, 1, False), (0x81, 1, True), (0x82, 2, True), (0x00, 0, False), (0x7F, 0x0F, False)],
)
def test_command_byte(cmd: int, command: int, udp: bool) -> None:
    req = RelayRequest(cmd)
    assert req.command == command == cmd & CMD_MASK and req.udp_flag is udp
    parsed, _ = parse_request(req.encode()) or pytest.fail("incomplete")
    assert parsed.cmd == cmd  # unknown commands and spare flag bits survive parsing


def test_last_singleton_wins_and_addrs_keep_order() -> None:
    other = TunnelId.parse("11111111-2222-3333-4444-555555555555")
    a1, a2, a3 = (Address.from_hostport(t) for t in ("1.1.1.1:1", "b:2", "c:3"))
    req = RelayRequest(
        Cmd.CONNECT,
        [  # a list is accepted and stored as a tuple
            UserAuthFeature("u1", "p1"),
            AddrFeature(a1),
            NetworkFeature(NETWORK_UDP),
            TunnelFeature(other, 20),
            AddrFeature(a2),
            UserAuthFeature("u2", "p2"),
            TunnelFeature(TUNNEL, 16),
            NetworkFeature(NETWORK_TCP),
            AddrFeature(a3),
        ],  # type: ignore[arg-type]
    )
    assert isinstance(req.features, tuple)
    parsed, _ = parse_request(req.encode()) or pytest.fail("incomplete")
    assert parsed == req
    assert parsed.user_auth == UserAuthFeature("u2", "p2")
    assert parsed.addrs == [a1, a2, a3]
    assert parsed.tunnel_id == TUNNEL and parsed.tunnel_len == 16
    assert parsed.network == NETWORK_TCP


def test_response_connector_id() -> None:
    resp = RelayResponse(0, (TunnelFeature(TUNNEL), TunnelFeature(CONNECTOR, 20)))
    parsed, _ = parse_response(resp.encode()) or pytest.fail("incomplete")
    assert parsed.connector_id == CONNECTOR
    assert RelayResponse(0).connector_id is None and RelayResponse(0).addrs == []


def test_network_names() -> None:
    names = [network_name(n) for n in (0, 1, 2, 0x10, 0x11)]
    assert names == ["tcp", "udp", "ip", "unix", "serial"]
    assert network_name(0x1234) == "tcp"
    assert NetworkFeature(1).name == "udp"


def test_unknown_feature_is_kept() -> None:
    block = h("05 00 03 61 3d 62  02 00 04 03 00 00 00  00 00 00")
    assert decode_features(block) == [
        UnknownFeature(5, b"a=b"),
        AddrFeature(Address("", 0, ATYP_DOMAIN)),
        UnknownFeature(0, b""),
    ]
    assert encode_features(decode_features(block)) == block
    assert FeatureType.NETWORK == 4


def test_extra_data_bytes_are_ignored_and_canonicalised() -> None:
    block = h(
        "01 00 05 01 75 01 70 ff"  # user auth + 1 spare byte
        "  02 00 08 01 7f 00 00 01 00 50 ee"  # IPv4 + 1
        f"  03 00 18 {TUNNEL_HEX} 01 00 00 09 aa bb cc dd"  # 24-byte tunnel ID
        "  04 00 03 00 01 00"  # network + 1
    )
    features = decode_features(block)
    assert features == [
        UserAuthFeature("u", "p"),
        AddrFeature(Address("127.0.0.1", 80, ATYP_IPV4)),
        TunnelFeature(TUNNEL, 24),
        NetworkFeature(NETWORK_UDP),
    ]
    tunnel = features[2]
    assert isinstance(tunnel, TunnelFeature)
    assert tunnel.tunnel_id.flag == 1 and tunnel.tunnel_id.weight == 9
    canonical = encode_features(features)
    assert canonical != block  # only canonical encodings round-trip byte for byte
    assert canonical == h(
        "01 00 04 01 75 01 70  02 00 07 01 7f 00 00 01 00 50"
        f"  03 00 14 {TUNNEL_HEX} 01 00 00 09  04 00 02 00 01"
    )
    assert decode_features(canonical) == features[:2] + [TunnelFeature(TUNNEL, 20), features[3]]


def test_user_auth_bytes_round_trip() -> None:
    data = h("01 00 06 02 ff 00 02 c3 28")  # not UTF-8 at all
    (auth,) = decode_features(data)
    assert isinstance(auth, UserAuthFeature)
    assert encode_features([auth]) == data
    assert encode_features([UserAuthFeature("", "")]) == h("01 00 02 00 00")
    assert decode_features(h("01 00 02 00 00")) == [UserAuthFeature("", "")]


# --- framing errors: RemoteProtocolError with status None (gost closes without a reply) -------

BAD_BLOCKS = {
    "truncated feature header": "02",
    "truncated feature header (2 bytes)": "02 00",
    "LEN past end": "02 00 05 03 00 00",
    "LEN past end after a good feature": "04 00 02 00 01  03 00 10 00",
    "user auth empty": "01 00 00",
    "user auth 1 byte": "01 00 01 00",
    "user auth ULEN past end": "01 00 03 04 75 73",
    "user auth no PLEN": "01 00 05 04 75 73 65 72",
    "user auth PLEN past end": "01 00 07 04 75 73 65 72 04 70",
    "addr short": "02 00 03 03 00 00",
    "addr bad ATYP": "02 00 07 02 7f 00 00 01 00 50",
    "addr short IPv4": "02 00 06 01 7f 00 00 01 00",
    "addr short domain": "02 00 05 03 02 61 00 50",
    "tunnel short": "03 00 0f" + " 4d" * 15,
    "tunnel empty": "03 00 00",
    "network short": "04 00 01 00",
    "network empty": "04 00 00",
}


@pytest.mark.parametrize("name", list(BAD_BLOCKS))
def test_bad_feature_blocks(name: str) -> None:
    block = h(BAD_BLOCKS[name])
    with pytest.raises(RemoteProtocolError) as info:
        decode_features(block)
    assert info.value.status is None
    message = h("01 02") + len(block).to_bytes(2, "big") + block
    for parse in (parse_request, parse_response):
        with pytest.raises(RemoteProtocolError) as info:
            parse(message)
        assert info.value.status is None
    reader = RelayReader("request")
    reader.receive_data(message + b"payload")
    with pytest.raises(RemoteProtocolError):
        reader.next_event()
    with pytest.raises(RemoteProtocolError):  # and it stays failed
        reader.next_event()
    assert reader.trailing() == b""


@pytest.mark.parametrize("first", [0x00, 0x02, 0x05, 0xFF])
def test_bad_version_detected_on_first_byte(first: int) -> None:
    for parse in (parse_request, parse_response):
        with pytest.raises(RemoteProtocolError) as info:
            parse(bytes((first,)))
        assert info.value.status is None
        with pytest.raises(RemoteProtocolError):
            parse(bytes((first,)) + RELAY_BIND[1:])
    for kind in ("request", "response"):
        reader = RelayReader(kind)  # type: ignore[arg-type]
        reader.receive_data(bytes((first,)))
        with pytest.raises(RemoteProtocolError):
            reader.next_event()
        assert reader.buffered <= 1


def test_truncated_header_and_features_need_more() -> None:
    for wire in REQUESTS:
        for cut in range(len(wire)):
            assert parse_request(wire[:cut]) is None
    assert parse_response(b"") is None
    assert parse_response(h("01 00 00")) is None


def test_encode_limits() -> None:
    big = UnknownFeature(9, bytes(MAX_FEATURES_LEN - 3))
    wire = RelayRequest(1, (big,)).encode()
    assert len(wire) == MAX_MESSAGE_LEN
    assert parse_request(wire) == (RelayRequest(1, (big,)), MAX_MESSAGE_LEN)
    with pytest.raises(LocalProtocolError):
        RelayRequest(1, (big, NetworkFeature(0))).encode()
    with pytest.raises(LocalProtocolError):
        encode_features([UnknownFeature(9, bytes(MAX_FEATURES_LEN))])
    with pytest.raises(LocalProtocolError):
        RelayRequest(256).encode()
    with pytest.raises(LocalProtocolError):
        RelayResponse(-1).encode()
    with pytest.raises(LocalProtocolError):
        encode_features([UserAuthFeature("x" * 256, "")])
    with pytest.raises(LocalProtocolError):
        encode_features([UserAuthFeature("", "p" * 256)])
    with pytest.raises(LocalProtocolError):
        encode_features([NetworkFeature(0x10000)])
    with pytest.raises(LocalProtocolError):
        encode_features([UnknownFeature(256, b"")])
    assert len(encode_features([UserAuthFeature("x" * 255, "p" * 255)])) == 3 + 2 + 510


# --- incremental reader ----------------------------------------------------------------------


def _read_all(kind: str, chunks: list[bytes]) -> tuple[object, bytes]:
    reader = RelayReader(kind)  # type: ignore[arg-type]
    event: object = NEED_DATA
    for chunk in chunks:
        assert reader.trailing() == b"" or event is not NEED_DATA
        reader.receive_data(chunk)
        assert reader.buffered <= MAX_MESSAGE_LEN
        event = reader.next_event()
    return event, reader.trailing()


@pytest.mark.parametrize(
    ("kind", "wire"),
    [("request", w) for w in REQUESTS] + [("response", w) for w in RESPONSES],
)
def test_every_split_parses_the_same(kind: str, wire: bytes) -> None:
    payload = b"GET / HTTP/1.1\r\n\r\n"
    expected = (parse_request if kind == "request" else parse_response)(wire)
    assert expected is not None and expected[1] == len(wire)
    data = wire + payload
    for cut in range(len(data) + 1):
        event, tail = _read_all(kind, [data[:cut], data[cut:]])
        assert event == expected[0], cut
        assert tail == payload, cut
    event, tail = _read_all(kind, [data[i : i + 1] for i in range(len(data))])
    assert event == expected[0] and tail == payload
    event, tail = _read_all(kind, [memoryview(bytearray(data))])
    assert event == expected[0] and tail == payload


def test_reader_before_and_after_the_message() -> None:
    reader = RelayReader("response")
    assert reader.next_event() is NEED_DATA
    reader.receive_data(b"")
    assert reader.next_event() is NEED_DATA
    reader.receive_data(BIND_REPLY[:10])
    assert reader.next_event() is NEED_DATA and reader.trailing() == b""
    reader.receive_data(BIND_REPLY[10:] + b"\x01\x03")
    assert reader.trailing() == b""  # nothing is trailing until the message has been read
    msg = reader.next_event()
    assert isinstance(msg, RelayResponse) and msg.connector_id == CONNECTOR
    assert reader.next_event() is msg  # asking again returns the same message
    reader.receive_data(b"\x00\x08")
    assert reader.trailing() == b"\x01\x03\x00\x08"
    assert reader.trailing() == b"\x01\x03\x00\x08"  # not consumed by reading it
    assert reader.buffered == 0


def test_reader_never_buffers_more_than_one_message() -> None:
    header = h("01 01 ff ff")
    reader = RelayReader("request")
    reader.receive_data(header + bytes(200_000))
    assert reader.buffered == MAX_MESSAGE_LEN
    # 65535 zero bytes are 21845 "type 0, LEN 0" unknown features
    msg = reader.next_event()
    assert isinstance(msg, RelayRequest) and len(msg.features) == 21845
    assert len(reader.trailing()) == 200_000 - MAX_FEATURES_LEN


def test_reader_kind_is_checked_and_selects_the_type() -> None:
    with pytest.raises(ValueError):
        RelayReader("both")  # type: ignore[arg-type]
    reader = RelayReader("request")
    reader.receive_data(h("01 00 00 00"))
    assert reader.next_event() == RelayRequest(0)
    reader = RelayReader("response")
    reader.receive_data(h("01 00 00 00"))
    assert reader.next_event() == RelayResponse(Status.OK)


def test_parse_accepts_bytearray_and_memoryview() -> None:
    buf = bytearray(RELAY_BIND + b"rest")
    req, used = parse_request(buf) or pytest.fail("incomplete")
    del buf[:used]  # no view on the buffer may survive parsing
    assert buf == b"rest"
    req2, used2 = parse_request(memoryview(RELAY_BIND + b"rest")) or pytest.fail("incomplete")
    assert req2 == req and used2 == used
