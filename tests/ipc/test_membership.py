"""Registry and MembershipView as scripted state machines (no sockets)."""

from __future__ import annotations

import msgspec

from burrow.ipc.membership import MAX_PENDING_DELTAS, MembershipView, Registry
from burrow.ipc.messages import ConnectorInfo, Delta, Snapshot

T1 = "4d21094e-b74c-4916-86c1-d9fa36ea677b"
T2 = "9b1f6a52-3c0e-4f8e-a8d1-5b2f0a8e7c11"


def info(cid: str, *, tunnel: str = T1, worker: int = 0, network: str = "tcp") -> ConnectorInfo:
    return ConnectorInfo(
        tunnel_id=tunnel,
        connector_id=cid,
        worker=worker,
        network=network,
        weight=1,
        dialect="relay",
        peer="127.0.0.1:1",
        since=1.0,
    )


def ids(conns: list[ConnectorInfo]) -> list[str]:
    return sorted(c.connector_id for c in conns)


# Registry ---------------------------------------------------------------------------------------


def test_registry_stamps_one_seq_per_change() -> None:
    reg = Registry()
    assert reg.seq == 0 and reg.snapshot() == Snapshot(seq=0, connectors=[])
    a, b = info("a"), info("b", worker=1)
    assert reg.up(a) == Delta(seq=1, up=[a], down=[])
    assert reg.up(b) == Delta(seq=2, up=[b], down=[])
    assert reg.down(T1, "a") == Delta(seq=3, up=[], down=[(T1, "a")])
    assert reg.connectors() == [b]
    assert reg.snapshot() == Snapshot(seq=3, connectors=[b])


def test_registry_apply_is_one_delta_and_a_view_follows_it() -> None:
    reg = Registry()
    view = MembershipView()
    view.on_snapshot(reg.snapshot())
    ups = [info(f"c{i}", tunnel=T1 if i % 2 else T2, worker=i % 2) for i in range(500)]
    d = reg.apply(ups, [])
    assert d is not None and d.seq == 1 and d.up == ups and d.down == []
    assert view.on_delta(d) and ids(view.all()) == ids(ups)
    # Downs first, and only those the registry knew; ups in the same batch stay.
    d = reg.apply([info("new")], [(T1, "c1"), (T2, "c0"), (T1, "never")])
    assert d is not None and d.seq == 2 and d.down == [(T1, "c1"), (T2, "c0")]
    assert view.on_delta(d) and ids(view.all()) == ids(reg.connectors())
    assert len(reg.connectors()) == 499
    assert reg.apply([], [(T1, "never")]) is None and reg.seq == 2  # nothing changed
    fresh = MembershipView()
    fresh.on_snapshot(reg.snapshot())  # a restarting worker's snapshot equals the replica
    assert ids(fresh.all()) == ids(view.all()) and fresh.seq == view.seq == 2


def test_registry_down_of_unknown_connector_publishes_nothing() -> None:
    reg = Registry()
    reg.up(info("a"))
    assert reg.down(T1, "zzz") is None
    assert reg.down(T2, "a") is None
    assert reg.seq == 1


def test_registry_up_again_replaces_the_entry() -> None:
    reg = Registry()
    reg.up(info("a", worker=0))
    moved = info("a", worker=3)
    assert reg.up(moved).seq == 2
    assert reg.connectors() == [moved]


def test_drop_worker_removes_all_its_connectors_in_one_delta() -> None:
    reg = Registry()
    reg.up(info("a", worker=0))
    reg.up(info("b", worker=1))
    reg.up(info("c", worker=0, tunnel=T2))
    d = reg.drop_worker(0)
    assert d == Delta(seq=4, up=[], down=[(T1, "a"), (T2, "c")])
    assert ids(reg.connectors()) == ["b"]
    assert reg.drop_worker(0) is None and reg.drop_worker(9) is None
    assert reg.seq == 4


# MembershipView ---------------------------------------------------------------------------------


def test_view_applies_snapshot_then_consecutive_deltas() -> None:
    reg, view = Registry(), MembershipView()
    reg.up(info("a"))
    assert not view.synced and view.lookup(T1) == []
    view.on_snapshot(reg.snapshot())
    assert view.synced and ids(view.lookup(T1)) == ["a"]
    assert view.on_delta(reg.up(info("b", tunnel=T2, network="udp")))
    assert view.on_delta(reg.down(T1, "a"))  # type: ignore[arg-type]
    assert view.lookup(T1) == [] and ids(view.all()) == ["b"]
    assert ids(view.lookup(T2, "udp")) == ["b"] and view.lookup(T2, "tcp") == []
    assert view.seq == reg.seq == 3


def test_deltas_before_the_snapshot_are_buffered_and_only_newer_ones_replayed() -> None:
    reg, view = Registry(), MembershipView()
    d1 = reg.up(info("a"))
    d2 = reg.up(info("b"))
    snap = reg.snapshot()  # covers d1, d2
    d3 = reg.down(T1, "a")
    d4 = reg.up(info("c"))
    assert d3 is not None
    # The SUB saw d2..d4 before the DEALER got the snapshot (d1 was before it subscribed).
    for d in (d2, d4, d3):  # out of order too: replay sorts by seq
        assert view.on_delta(d) is True
    assert not view.synced and view.all() == []
    view.on_snapshot(snap)
    assert view.synced and view.seq == 4
    assert ids(view.all()) == ["b", "c"]
    assert d1.seq == 1


def test_gap_returns_false_and_the_next_snapshot_repairs_the_view() -> None:
    reg, view = Registry(), MembershipView()
    view.on_snapshot(reg.snapshot())
    assert view.on_delta(reg.up(info("a")))
    reg.up(info("lost"))  # published, never received
    d3 = reg.up(info("c"))
    assert view.on_delta(d3) is False
    assert not view.synced
    d4 = reg.down(T1, "a")
    assert d4 is not None
    assert view.on_delta(d4) is True  # buffered while waiting, no second request
    view.on_snapshot(reg.snapshot())
    assert view.synced and view.seq == 4
    assert ids(view.all()) == ["c", "lost"]


def test_snapshot_older_than_a_hole_in_the_buffer_leaves_the_view_unsynced() -> None:
    reg, view = Registry(), MembershipView()
    old = reg.snapshot()  # seq 0
    reg.up(info("a"))  # seq 1: missed
    d2 = reg.up(info("b"))
    view.on_delta(d2)
    view.on_snapshot(old)
    assert not view.synced  # 1 is missing between the snapshot and the buffered delta
    view.on_snapshot(reg.snapshot())
    assert view.synced and ids(view.all()) == ["a", "b"] and view.seq == 2


def test_duplicate_and_old_deltas_are_ignored() -> None:
    reg, view = Registry(), MembershipView()
    d1 = reg.up(info("a"))
    view.on_snapshot(reg.snapshot())
    assert view.on_delta(d1) is True  # already in the snapshot
    d2 = reg.down(T1, "a")
    assert d2 is not None
    assert view.on_delta(d2) and view.all() == []
    assert view.on_delta(d1) is True  # stale re-up must not resurrect "a"
    assert view.on_delta(d2) is True
    assert view.all() == [] and view.seq == 2


def test_a_new_snapshot_replaces_everything() -> None:
    view = MembershipView()
    view.on_snapshot(Snapshot(seq=5, connectors=[info("a"), info("b", tunnel=T2)]))
    view.on_snapshot(Snapshot(seq=9, connectors=[info("c")]))
    assert ids(view.all()) == ["c"] and view.lookup(T2) == [] and view.seq == 9


def test_drop_worker_delta_empties_the_view_of_that_worker() -> None:
    reg, view = Registry(), MembershipView()
    view.on_snapshot(reg.snapshot())
    for d in (
        reg.up(info("a", worker=0)),
        reg.up(info("b", worker=1)),
        reg.up(info("c", worker=0)),
    ):
        view.on_delta(d)
    dropped = reg.drop_worker(0)
    assert dropped is not None and view.on_delta(dropped)
    assert ids(view.all()) == ["b"]


def test_pending_buffer_is_bounded_and_drops_the_oldest() -> None:
    reg, view = Registry(), MembershipView()
    deltas = [reg.up(info(f"c{i}")) for i in range(MAX_PENDING_DELTAS + 10)]
    for d in deltas:
        view.on_delta(d)
    # The first ten fell out of the buffer: a snapshot from before them cannot be completed...
    view.on_snapshot(Snapshot(seq=0, connectors=[]))
    assert not view.synced
    # ...but one taken after them can.
    view.on_snapshot(Snapshot(seq=10, connectors=[info(f"c{i}") for i in range(10)]))
    assert view.synced and len(view.all()) == MAX_PENDING_DELTAS + 10


def test_other_nodes_connectors_are_remote_only_and_survive_drop_worker() -> None:
    reg = Registry()
    here = info("local")
    there = msgspec.structs.replace(info("far"), node="b", address="127.0.0.3:8443")
    reg.apply([here, there], [])
    view = MembershipView()
    view.on_snapshot(reg.snapshot())
    assert view.lookup(T1) == [here]
    assert view.lookup(T1, "tcp") == [here]
    assert view.remote(T1) == [there]
    assert view.remote(T1, "udp") == []
    assert len(view.all()) == 2
    delta = reg.drop_worker(0)
    assert delta is not None and delta.down == [(T1, "local")]
    assert reg.connectors() == [there]


def test_cluster_down_reaches_views_by_delta_and_by_snapshot() -> None:
    reg, live = Registry(), MembershipView()
    live.on_snapshot(reg.snapshot())
    assert not live.cluster_down
    assert reg.set_cluster_down(False) is None  # unchanged: nothing to publish
    flip = reg.set_cluster_down(True)
    assert flip is not None and live.on_delta(flip) and live.cluster_down
    # Every later delta carries the flag, and a view that boots now learns it from the snapshot.
    later = reg.up(info("x"))
    assert later.cluster_down
    late = MembershipView()
    late.on_snapshot(reg.snapshot())
    assert late.cluster_down
    back = reg.set_cluster_down(False)
    assert back is not None and live.on_delta(later) and live.on_delta(back)
    assert not live.cluster_down and ids(live.all()) == ["x"]
