"""The cluster forward's codec, key derivation and gost-style HTTP rewrite (sans IO)."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from burrow.proto.errors import ProtocolError
from burrow.proto.forward import (
    MAGIC,
    MAX_HEADER,
    ForwardHeader,
    cluster_key_seed,
    decode_forward,
    encode_forward,
    forwarded_node,
    hkdf_sha256,
    with_forwarded_node,
)

TID = "4d21094e-b74c-4916-86c1-d9fa36ea677b"

headers = st.builds(
    ForwardHeader,
    node=st.text(max_size=63),
    kind=st.sampled_from(["entrypoint", "visitor"]),
    tunnel=st.just(TID),
    network=st.sampled_from(["tcp", "udp"]),
    peer=st.text(max_size=60),
    target=st.text(max_size=300),
    reply=st.integers(-1, 8),
)


@given(headers, st.binary(max_size=256), st.integers(4, 64))
def test_roundtrip_in_any_chunking(header: ForwardHeader, prefix: bytes, step: int) -> None:
    """Decoding the growing buffer says "need more" until the header is whole, then finds it."""
    wire = encode_forward(header, prefix)
    got = None
    for end in range(0, len(wire) + 1, step):
        got = decode_forward(wire[:end])
        if got is not None:
            break
    if got is None:
        got = decode_forward(wire)
    assert got is not None
    decoded, used = got
    assert decoded == header
    assert wire[used:] == prefix


@pytest.mark.parametrize(
    "wire",
    [
        b"GET / HTTP/1.1\r\n",  # not a forward at all
        b"\x01\x01\x00",  # a relay request
        b"BFWX",
        MAGIC + (MAX_HEADER + 1).to_bytes(2, "big"),  # oversized: refused before it arrives
        MAGIC + b"\x00\x03abc",  # not msgpack of a header
        MAGIC + b"\x00\x01\xc0",  # msgpack nil
    ],
)
def test_garbage_is_refused(wire: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_forward(wire)


def test_unroutable_kind_and_other_version_refused() -> None:
    for header in (
        ForwardHeader(node="a", kind="relay", tunnel=TID, network="tcp", peer=""),
        ForwardHeader(node="a", kind="visitor", tunnel=TID, network="sctp", peer=""),
        ForwardHeader(v=2, node="a", kind="visitor", tunnel=TID, network="tcp", peer=""),
    ):
        with pytest.raises(ProtocolError):
            decode_forward(encode_forward(header))


def test_hkdf_matches_rfc5869_case_1() -> None:
    """RFC 5869 appendix A.1 (SHA-256)."""
    ikm = bytes.fromhex("0b" * 22)
    salt = bytes.fromhex("000102030405060708090a0b0c")
    info = bytes.fromhex("f0f1f2f3f4f5f6f7f8f9")
    okm = hkdf_sha256(ikm, salt, info, 42)
    assert okm.hex() == (
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    )


def test_key_seed_depends_on_the_secret_only() -> None:
    a = cluster_key_seed("secret-number-one-0123456789")
    assert a == cluster_key_seed("secret-number-one-0123456789")
    assert len(a) == 32
    assert not hmac.compare_digest(a, cluster_key_seed("secret-number-two-0123456789"))
    assert a != hashlib.sha256(b"secret-number-one-0123456789").digest()


def test_forwarded_node_header_added_once() -> None:
    head = b"GET /x HTTP/1.1\r\nHost: a.example\r\ngost-forwarded-node: forged\r\n\r\nbody"
    out = with_forwarded_node(head, "edge-2")
    assert out.startswith(b"GET /x HTTP/1.1\r\nGost-Forwarded-Node: edge-2\r\nHost: a.example\r\n")
    assert out.count(b"orwarded-Node") + out.count(b"orwarded-node") == 1
    assert out.endswith(b"\r\n\r\nbody")
    assert forwarded_node(out) == "edge-2"
    assert forwarded_node(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n") is None
    assert with_forwarded_node(b"\x16\x03\x01", "n") == b"\x16\x03\x01"  # not HTTP: unchanged


@given(st.binary(max_size=64), st.binary(max_size=300))
def test_any_bytes_decode_or_refuse(head: bytes, tail: bytes) -> None:
    """Whatever a peer sends after the handshake: a header, "need more", or ProtocolError."""
    for wire in (head + tail, MAGIC + head + tail, MAGIC + len(tail).to_bytes(2, "big") + tail):
        try:
            got = decode_forward(wire)
        except ProtocolError:
            continue
        if got is not None:
            header, used = got
            assert isinstance(header, ForwardHeader) and 6 <= used <= len(wire)
