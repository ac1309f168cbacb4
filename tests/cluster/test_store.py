"""The Redis layout: gost-plugins' entry JSON both ways, node records, liveness, SD answers."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from burrow.cluster.store import (
    GOST_EXPIRY,
    KIND_BURROW,
    KIND_GOST,
    Entry,
    Liveness,
    Message,
    NodeRecord,
    decode_entry,
    decode_message,
    decode_node,
    encode_entry,
    encode_message,
    encode_node,
    placement,
    remote_connectors,
    sd_services,
)

T = "4d21094e-b74c-4916-86c1-d9fa36ea677b"
NOW = 1_800_000_000.0
TTL = 2.0

names = st.text(st.characters(min_codepoint=33, max_codepoint=0x2FF), min_size=1, max_size=40)


@given(
    node=names,
    network=st.sampled_from(["tcp", "udp"]),
    address=names,
    renew=st.integers(0, 2**40),
    kind=st.sampled_from([KIND_BURROW, KIND_GOST]),
)
def test_entries_round_trip(node: str, network: str, address: str, renew: int, kind: str) -> None:
    entry = Entry(node, network, address, renew, kind)
    assert decode_entry(encode_entry(entry)) == entry


def test_entry_json_is_gost_plugins_layout() -> None:
    gost = json.loads(encode_entry(Entry("n1", "tcp", "10.0.0.1:80", 5, KIND_GOST)))
    assert gost == {"Node": "n1", "Network": "tcp", "Address": "10.0.0.1:80", "Renew": 5}
    ours = json.loads(encode_entry(Entry("n1", "udp", "10.0.0.1:80", 5, KIND_BURROW)))
    assert ours["Kind"] == "burrow" and isinstance(ours["Renew"], int)
    # What gost-plugins' Register writes (Go's json.Marshal of its struct) decodes as gost's.
    written = '{"Node":"9f1c","Network":"tcp","Address":"10.0.0.9:8000","Renew":1700000000}'
    assert decode_entry(written) == Entry("9f1c", "tcp", "10.0.0.9:8000", 1700000000, KIND_GOST)


@given(st.binary(max_size=300) | st.text(max_size=300))
def test_garbage_never_raises(raw: bytes | str) -> None:
    decode_entry(raw)
    decode_message(raw)


def test_malformed_entries_are_skipped() -> None:
    for raw in ["[]", "{}", '{"Node":"n","Address":""}', '{"Node":"n","Address":"a","Renew":"x"}',
                '{"Node":"n","Address":"a","Network":"sctp"}', "x" * 5000]:  # fmt: skip
        assert decode_entry(raw) is None


def test_messages_round_trip() -> None:
    msg = Message("register", T, "c1", "b")
    assert decode_message(encode_message(msg)) == msg
    for op in ("node_up", "node_down"):  # a node joined / left: the others re-read node records
        assert decode_message(encode_message(Message(op, node="b"))) == Message(op, node="b")
    assert decode_message('{"op":"drop_all"}') is None


def test_node_records_round_trip() -> None:
    rec = NodeRecord("b", "127.0.0.3:8443", "127.0.0.3:9000", NOW)
    assert decode_node("b", encode_node(rec)) == rec
    assert decode_node("b", {"advertise": "x"}) is None
    # No internal listener: gost nodes are told the advertise address.
    assert decode_node("b", {"advertise": "h:1", "heartbeat": "1.0"}) == NodeRecord(
        "b", "h:1", "h:1", 1.0
    )


def _fields(*entries: tuple[str, Entry]) -> dict[str, str]:
    return {cid: encode_entry(e) for cid, e in entries}


def test_remote_connectors_follow_node_liveness_and_skip_this_node() -> None:
    nodes = {
        "b": NodeRecord("b", "127.0.0.3:8443", "127.0.0.3:9000", NOW - 1),
        "dead": NodeRecord("dead", "127.0.0.9:8443", "", NOW - 1.6 * TTL),
    }
    fields = _fields(
        ("mine", Entry("a", "tcp", "x:1", int(NOW), KIND_BURROW)),
        ("cb", Entry("b", "tcp", "127.0.0.3:9000", int(NOW), KIND_BURROW)),
        ("cdead", Entry("dead", "tcp", "x:1", int(NOW), KIND_BURROW)),
        ("cnorec", Entry("gone", "udp", "x:1", int(NOW), KIND_BURROW)),
        ("cgost", Entry("uuid-1", "udp", "10.0.0.7:80", int(NOW - 10), KIND_GOST)),
        ("cold", Entry("uuid-2", "tcp", "10.0.0.8:80", int(NOW - GOST_EXPIRY - 1), KIND_GOST)),
    )
    got = remote_connectors(T, fields, nodes, Liveness("a", TTL, NOW))
    assert [(c.connector_id, c.node, c.address, c.node_kind, c.network) for c in got] == [
        ("cb", "b", "127.0.0.3:8443", "burrow", "tcp"),
        ("cgost", "uuid-1", "10.0.0.7:80", "gost", "udp"),
    ]
    assert all(c.tunnel_id == T for c in got)


def test_a_dead_node_is_dropped_within_two_ttls() -> None:
    rec = NodeRecord("b", "h:1", "h:1", NOW)
    assert Liveness("a", TTL, NOW + 1.5 * TTL).node_alive(rec)
    # The last heartbeat plus the reader's resync period (ttl / 3) stays under 2 x ttl.
    assert not Liveness("a", TTL, NOW + 1.5 * TTL + 0.01).node_alive(rec)
    assert not Liveness("a", TTL, NOW).node_alive(None)


def test_sd_services_is_gosts_get_answer() -> None:
    fields = _fields(
        ("c1", Entry("a", "tcp", "127.0.0.2:9000", int(NOW), KIND_BURROW)),
        ("c2", Entry("uuid", "udp", "10.0.0.7:80", int(NOW - GOST_EXPIRY - 5), KIND_GOST)),
    )
    assert sd_services(T, fields, Liveness("a", TTL, NOW)) == [
        {"id": "c1", "name": T, "node": "a", "network": "tcp", "address": "127.0.0.2:9000"}
    ]


def test_placement_names_this_node_for_local_connectors() -> None:
    fields = _fields(("cb", Entry("b", "tcp", "h", int(NOW), KIND_BURROW)))
    far = remote_connectors(
        T, fields, {"b": NodeRecord("b", "h:2", "h:2", NOW)}, Liveness("a", TTL, NOW)
    )
    local = far[0].__class__(T, "c0", 1, "tcp", 1, "relay", "p", NOW)
    rows = placement([local, *far], "a")[T]
    assert [(r["node"], r["kind"]) for r in rows] == [("a", "local"), ("b", "burrow")]
