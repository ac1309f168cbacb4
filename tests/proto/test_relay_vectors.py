"""Every relay message captured from real gost (both dialects) decodes and re-encodes exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.vectors import captures, load_chunks, streams

from burrow.common.ids import TunnelId
from burrow.proto.addr import ATYP_DOMAIN, ATYP_IPV4, Address
from burrow.proto.need import NeedData
from burrow.proto.relay import (
    Cmd,
    RelayReader,
    RelayRequest,
    RelayResponse,
    Status,
    parse_request,
    parse_response,
)
from burrow.proto.relay_features import NETWORK_UDP, AddrFeature, TunnelFeature

TUNNEL = TunnelId.parse("4d21094e-b74c-4916-86c1-d9fa36ea677b")
DIALECTS = ("relay-rc10", "tunnel-v3.2.6")
EXPECTED_FILES = {
    "relay-rc10": {"a", "b", "c", "d"},
    "tunnel-v3.2.6": {"a", "b", "c", "d", "x1", "x1m", "x2", "x2m"},
}


def _capture(vectors_dir: Path, dialect: str, name: str) -> dict[tuple[int, str], bytes]:
    return streams(vectors_dir / dialect / f"{name}.jsonl")


def _request(data: bytes) -> RelayRequest:
    parsed = parse_request(data)
    assert parsed is not None
    return parsed[0]


def _response(data: bytes) -> RelayResponse:
    parsed = parse_response(data)
    assert parsed is not None
    return parsed[0]


def test_all_captures_present(vectors_dir: Path) -> None:
    found: dict[str, set[str]] = {d: set() for d in DIALECTS}
    for dialect, path in captures(vectors_dir):
        found[dialect].add(path.stem)
    assert found == EXPECTED_FILES


@pytest.mark.parametrize("dialect", DIALECTS)
def test_every_message_round_trips(vectors_dir: Path, dialect: str) -> None:
    checked = 0
    for d, path in captures(vectors_dir):
        if d != dialect:
            continue
        for (conn, direction), data in sorted(streams(path).items()):
            if len(data) < 4:
                continue  # a connection cut before a whole header was sent
            where = f"{path.name} conn {conn} {direction}"
            parse = parse_request if direction == "c2s" else parse_response
            parsed = parse(data)
            assert parsed is not None, where
            msg, used = parsed
            assert msg.encode() == data[:used], where
            checked += 1
    assert checked >= 8


@pytest.mark.parametrize("dialect", DIALECTS)
def test_reader_with_captured_chunk_boundaries(vectors_dir: Path, dialect: str) -> None:
    for d, path in captures(vectors_dir):
        if d != dialect:
            continue
        whole = streams(path)
        readers: dict[tuple[int, str], RelayReader] = {}
        for chunk in load_chunks(path):
            key = (chunk.conn, chunk.direction)
            if len(whole[key]) < 4:
                continue
            reader = readers.get(key)
            if reader is None:
                reader = RelayReader("request" if chunk.direction == "c2s" else "response")
                readers[key] = reader
            reader.receive_data(chunk.data)
        for key, reader in readers.items():
            event = reader.next_event()
            assert not isinstance(event, NeedData), (path.name, key)
            used = len(event.encode())
            assert event.encode() == whole[key][:used]
            assert reader.trailing() == whole[key][used:], (path.name, key)


def test_rc10_bind_has_16_byte_tunnel_id(vectors_dir: Path) -> None:
    s = _capture(vectors_dir, "relay-rc10", "a")
    req = _request(s[1, "c2s"])
    assert req.cmd == Cmd.BIND and not req.udp_flag
    assert req.tunnel_len == 16
    assert req.tunnel_id is not None
    assert req.tunnel_id.text == "4d21094e-b74c-4916-86c1-d9fa36ea677b"
    assert req.addrs == [Address("", 0, ATYP_DOMAIN)]  # the bind address ":0"
    resp = _response(s[1, "s2c"])
    assert resp.status == Status.OK
    assert resp.addrs == [Address("a6265c6d9847a4be", 0, ATYP_DOMAIN)]  # the endpoint name
    tunnel = [f for f in resp.features if isinstance(f, TunnelFeature)]
    assert len(tunnel) == 1 and tunnel[0].length == 16
    assert resp.connector_id is not None and not resp.connector_id.is_zero


def test_v326_bind_has_20_bytes_and_two_addrs(vectors_dir: Path) -> None:
    s = _capture(vectors_dir, "tunnel-v3.2.6", "a")
    req = _request(s[1, "c2s"])
    assert req.command == Cmd.BIND and req.tunnel_len == 20 and req.tunnel_id == TUNNEL
    assert sum(isinstance(f, AddrFeature) for f in req.features) == 2
    src, dst = req.addrs
    assert src.atyp == ATYP_IPV4 and src.host == "127.0.0.1" and src.port != 0
    assert dst == Address("", 0, ATYP_DOMAIN)
    resp = _response(s[1, "s2c"])
    tunnel = [f for f in resp.features if isinstance(f, TunnelFeature)]
    assert len(tunnel) == 1 and tunnel[0].length == 20
    assert resp.connector_id is not None and not resp.connector_id.udp


@pytest.mark.parametrize("dialect", DIALECTS)
def test_rudp_bind_has_udp_flag(vectors_dir: Path, dialect: str) -> None:
    s = _capture(vectors_dir, dialect, "c")
    bind = _request(s[1, "c2s"])
    assert bind.command == Cmd.BIND and bind.udp_flag and bind.cmd == 0x82
    visitor = _request(s[2, "c2s"])
    assert visitor.command == Cmd.CONNECT and visitor.udp_flag
    assert visitor.network == NETWORK_UDP  # rc10's visitor (rc9+) sends Network(udp) too
    connector = _response(s[1, "s2c"]).connector_id
    assert connector is not None
    if dialect == "tunnel-v3.2.6":
        assert bind.network == NETWORK_UDP
        assert connector.udp  # FLAG 0x01 travels in the 20-byte connector ID
    else:
        assert bind.network is None  # rc10's udp BIND only had the FUDP flag
        assert not connector.udp


@pytest.mark.parametrize("dialect", DIALECTS)
def test_unknown_host_gets_status_6(vectors_dir: Path, dialect: str) -> None:
    s = _capture(vectors_dir, dialect, "d")
    req = _request(s[3, "c2s"])
    assert req.command == Cmd.CONNECT and req.tunnel_id == TUNNEL
    assert req.addrs[-1] == Address("nope.example.com", 0, ATYP_DOMAIN)
    resp = _response(s[3, "s2c"])
    assert resp == RelayResponse(Status.HOST_UNREACHABLE)
    assert len(s[3, "s2c"]) == 4  # nothing after the refusal
    allowed = _response(s[2, "s2c"])
    assert allowed.status == Status.OK
