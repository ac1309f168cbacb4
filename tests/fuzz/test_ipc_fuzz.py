"""Fuzzing the ipc decoders and the Clone-pattern view: only results or our own errors come out."""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from burrow.ipc.membership import MembershipView, Registry
from burrow.ipc.messages import (
    ConnectorInfo,
    Delta,
    MessageError,
    decode_delta,
    decode_handoff,
    decode_snapshot,
    decode_worker,
)
from burrow.ipc.spec import SpecError, decode_spec

FUZZ = settings(max_examples=300, deadline=None)
DECODERS = [decode_worker, decode_snapshot, decode_delta]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(),
    st.text(max_size=20),
    st.binary(max_size=20),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=8,
)
tags = st.sampled_from(
    [
        "Hello",
        "Ready",
        "Heartbeat",
        "ConnectorUp",
        "ConnectorDown",
        "SnapshotRequest",
        "Snapshot",
        "Delta",
        "Other",
    ]
)
field_names = st.sampled_from(
    [
        "index",
        "pid",
        "generation",
        "now",
        "info",
        "tunnel_id",
        "connector_id",
        "seq",
        "connectors",
        "up",
        "down",
        "worker",
        "network",
        "weight",
    ]
)
tagged = st.builds(
    lambda tag, fields: msgspec.msgpack.encode({"type": tag, **fields}),
    tags,
    st.dictionaries(field_names, values, max_size=6),
)


@FUZZ
@given(st.binary(max_size=512) | tagged)
def test_bus_decoders_return_a_message_or_raise_message_error(data: bytes) -> None:
    for decode in DECODERS:
        try:
            decode(data)
        except MessageError:
            pass


@FUZZ
@given(st.binary(max_size=512), st.integers(0, 600))
def test_decode_handoff_returns_a_record_or_raises_message_error(body: bytes, hlen: int) -> None:
    for data in (body, hlen.to_bytes(2, "big") + body):
        try:
            header, prefix = decode_handoff(data)
        except MessageError:
            continue
        assert isinstance(prefix, bytes) and header.hops >= 0


@FUZZ
@given(
    st.binary(max_size=512)
    | st.dictionaries(st.text(max_size=12), values).map(msgspec.msgpack.encode)
)
def test_decode_spec_returns_a_spec_or_raises_spec_error(data: bytes) -> None:
    try:
        decode_spec(data)
    except SpecError:
        pass


def _info(cid: int, worker: int) -> ConnectorInfo:
    return ConnectorInfo(
        tunnel_id=f"t{cid % 3}",
        connector_id=f"c{cid}",
        worker=worker,
        network="tcp" if cid % 2 else "udp",
        weight=1,
        dialect="relay",
        peer="127.0.0.1:1",
        since=0.0,
    )


ops = st.lists(
    st.tuples(st.sampled_from(["up", "down", "drop"]), st.integers(0, 7), st.integers(0, 2)),
    max_size=40,
)
# What the SUB socket does to each published delta: deliver, lose, or deliver twice.
fates = st.lists(st.sampled_from(["ok", "ok", "ok", "lost", "dup"]), min_size=40, max_size=40)


def _state(conns: list[ConnectorInfo]) -> set[tuple[str, str, int]]:
    return {(c.tunnel_id, c.connector_id, c.worker) for c in conns}


@FUZZ
@given(ops, fates, st.data(), st.randoms(use_true_random=False))
def test_a_synced_view_always_equals_the_registry_at_its_seq(
    script: list[tuple[str, int, int]], fate: list[str], data: st.DataObject, rng: Any
) -> None:
    reg = Registry()
    snapshots = {0: reg.snapshot()}
    deltas: list[Delta] = []
    for op, cid, worker in script:
        if op == "up":
            delta: Delta | None = reg.up(_info(cid, worker))
        elif op == "down":
            delta = reg.down(f"t{cid % 3}", f"c{cid}")
        else:
            delta = reg.drop_worker(worker)
        if delta is not None:
            deltas.append(delta)
            snapshots[reg.seq] = reg.snapshot()
    # The snapshot the first request gets, and how many deltas the SUB saw before it arrived.
    snap_seq = data.draw(st.integers(0, reg.seq))
    early = data.draw(st.integers(0, len(deltas)))
    delivered: list[Delta] = []
    for d, f in zip(deltas, fate):
        delivered += [] if f == "lost" else [d, d] if f == "dup" else [d]
    head, tail = delivered[:early], delivered[early:]
    rng.shuffle(head)  # buffered deltas are replayed in seq order whatever order they came in

    view = MembershipView()
    newest = 0

    def check() -> None:
        if view.synced:
            assert _state(view.all()) == _state(snapshots[view.seq].connectors)
            for t in ("t0", "t1", "t2"):
                want = {c for c in _state(snapshots[view.seq].connectors) if c[0] == t}
                assert _state(view.lookup(t)) == want

    def resync() -> None:
        # What the client does on a gap: ask again; the registry answers with its state by then.
        view.on_snapshot(snapshots[max(newest, snap_seq)])
        check()

    for d in head:
        newest = max(newest, d.seq)
        assert view.on_delta(d)  # not synced yet: buffered, never a gap
        assert not view.synced
    view.on_snapshot(snapshots[snap_seq])
    check()
    if not view.synced:
        resync()
    for d in tail:
        newest = max(newest, d.seq)
        prev, was_synced = view.seq, view.synced
        if not view.on_delta(d):
            # A gap claim must be real: something between what we had and this delta is missing.
            assert was_synced and d.seq > prev + 1
            resync()
        elif not view.synced:
            resync()
        check()
    assert view.synced
    lost_at_end = [d.seq for d in deltas if d.seq > view.seq]
    assert view.seq == reg.seq or lost_at_end  # only trailing losses go unnoticed
