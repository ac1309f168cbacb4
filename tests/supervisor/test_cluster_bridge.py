"""ClusterBridge: the cluster client's posts become Registry Deltas (on the poll loop's thread)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from burrow.ipc.membership import MembershipView
from burrow.ipc.messages import ConnectorInfo, Delta
from burrow.supervisor.cluster_bridge import ClusterBridge
from burrow.supervisor.cluster_client import RemoteSync, StoreState
from burrow.supervisor.loop import Loop
from burrow.supervisor.registry import RegistryBroker

T1 = "4d21094e-b74c-4916-86c1-d9fa36ea677b"
T2 = "ac74d9dd-3125-442a-a7c1-f9e49e05faca"


def info(tid: str, cid: str, node: str = "", address: str = "") -> ConnectorInfo:
    return ConnectorInfo(tid, cid, 0, "tcp", 1, "", node, 0.0, node=node, address=address,
                         node_kind="burrow" if node else "")  # fmt: skip


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[ClusterBridge, RegistryBroker, list[Delta]]]:
    broker = RegistryBroker(f"ipc://{tmp_path}/reg", f"ipc://{tmp_path}/upd", lambda i, m: None)
    loop = Loop()
    bridge = ClusterBridge(broker, loop)
    seen: list[Delta] = []

    def published(d: Delta) -> None:
        seen.append(d)
        bridge.published(d)

    broker.on_publish = published
    yield bridge, broker, seen
    bridge.close()
    broker.close()


def test_syncs_replace_remote_entries_and_leave_local_ones(
    world: tuple[ClusterBridge, RegistryBroker, list[Delta]],
) -> None:
    bridge, broker, seen = world
    local = info(T1, "here")
    broker.publish(broker.registry.up(local))
    b1, b2, c1 = info(T1, "b1", "b", "h:1"), info(T2, "b2", "b", "h:1"), info(T1, "c1", "c", "h:2")
    bridge.apply(RemoteSync({T1: [b1, c1], T2: [b2]}, full=True))
    assert sorted(c.connector_id for c in broker.registry.remote()) == ["b1", "b2", "c1"]
    # A partial sync touches only its tunnels; a repeat of the same state publishes nothing.
    n = len(seen)
    bridge.apply(RemoteSync({T1: [c1]}, full=False))
    assert sorted(c.connector_id for c in broker.registry.remote()) == ["b2", "c1"]
    assert seen[-1].down == [(T1, "b1")] and len(seen) == n + 1
    bridge.apply(RemoteSync({T1: [c1]}, full=False))
    assert len(seen) == n + 1
    # A changed address is an update; a full sync drops what it does not list.
    moved = msgspec.structs.replace(c1, address="h:3")
    bridge.apply(RemoteSync({T1: [moved]}, full=True))
    assert broker.registry.remote() == [moved]
    assert local in broker.registry.connectors()
    bridge._refresh()  # what the poll loop runs once per turn after publishing
    assert {c.connector_id for c in bridge.connectors} == {"here", "c1"}


def test_store_down_drops_every_remote_entry_and_raises_the_flag(
    world: tuple[ClusterBridge, RegistryBroker, list[Delta]],
) -> None:
    bridge, broker, seen = world
    view = MembershipView()
    view.on_snapshot(broker.registry.snapshot())
    broker.publish(broker.registry.up(info(T1, "here")))
    bridge.apply(RemoteSync({T1: [info(T1, "b1", "b", "h:1")]}, full=True))
    bridge.apply(StoreState(down=True, reason="ConnectionError"))
    for d in seen:
        assert view.on_delta(d)
    assert view.cluster_down and view.remote(T1) == [] and len(view.lookup(T1)) == 1
    bridge.apply(StoreState(down=False))
    assert view.on_delta(seen[-1]) and not view.cluster_down


def test_posts_from_another_thread_wake_the_loop(
    world: tuple[ClusterBridge, RegistryBroker, list[Delta]],
) -> None:
    import threading

    bridge, broker, _ = world
    loop = bridge._loop
    t = threading.Thread(
        target=bridge.post, args=(RemoteSync({T2: [info(T2, "x", "b", "h")]}, True),)
    )
    t.start()
    t.join(5)
    loop.call_later(2.0, loop.stop)  # a bound on the wait, not a synchronisation

    def check() -> None:
        if broker.registry.remote():
            loop.stop()

    loop.call_later(0, check)
    orig = bridge._drain

    def drain() -> None:
        orig()
        check()

    loop.remove_reader(bridge._fd)
    loop.add_reader(bridge._fd, drain)
    loop.run()
    assert [c.connector_id for c in broker.registry.remote()] == ["x"]
