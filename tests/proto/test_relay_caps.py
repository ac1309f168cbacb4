"""Server-side caps on relay requests (issue 16 item 8): count and size of the features block."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from burrow.proto.errors import RemoteProtocolError
from burrow.proto.relay import Status, parse_request
from burrow.proto.relay_features import MAX_REQUEST_FEATURES, MAX_REQUEST_FEATURES_LEN

VECTORS = Path(__file__).resolve().parents[1] / "vectors"


def request(features: bytes, cmd: int = 1) -> bytes:
    return struct.pack("!BBH", 1, cmd, len(features)) + features


def test_block_over_the_cap_is_refused_from_the_header() -> None:
    """Four header bytes are enough: nothing of the block is buffered or decoded."""
    head = struct.pack("!BBH", 1, 1, MAX_REQUEST_FEATURES_LEN + 1)
    with pytest.raises(RemoteProtocolError) as err:
        parse_request(head, capped=True)
    assert err.value.status == Status.BAD_REQUEST
    assert parse_request(head) is None  # the codec alone still waits for the block


@pytest.mark.parametrize("count", [MAX_REQUEST_FEATURES, MAX_REQUEST_FEATURES + 1])
def test_feature_count(count: int) -> None:
    wire = request(b"\x7e\x00\x01x" * count)
    if count <= MAX_REQUEST_FEATURES:
        req, _ = parse_request(wire, capped=True) or pytest.fail("incomplete")
        assert len(req.features) == count
    else:
        with pytest.raises(RemoteProtocolError, match="more than 8") as err:
            parse_request(wire, capped=True)
        assert err.value.status == Status.BAD_REQUEST


def test_largest_legitimate_request_fits() -> None:
    """UserAuth 255/255, two 255-byte domain Addrs, Tunnel(20), Network, 1 KB metadata."""
    auth = b"\x01" + bytes([255]) + b"u" * 255 + bytes([255]) + b"p" * 255
    dom = b"\x03" + bytes([255]) + b"d" * 255 + b"\x00\x50"
    feats = [(1, auth), (2, dom), (2, dom), (3, bytes(20)), (4, b"\x00\x00"), (0x7E, bytes(960))]
    wire = request(b"".join(struct.pack("!BH", t, len(d)) + d for t, d in feats))
    req, _ = parse_request(wire, capped=True) or pytest.fail("incomplete")
    assert len(req.features) == 6


def test_every_captured_gost_request_passes() -> None:
    """Both dialects' captures (tests/vectors): every client request is under the caps."""
    seen = 0
    for path in sorted(VECTORS.glob("*/*.jsonl")):
        first: set[int] = set()
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            if rec.get("dir") != "c2s" or rec.get("off") != 0 or rec["conn"] in first:
                continue
            first.add(rec["conn"])
            wire = bytes.fromhex(rec["hex"])
            if wire[:1] == b"\x01":
                assert parse_request(wire, capped=True) is not None, path
                seen += 1
    assert seen >= 20
