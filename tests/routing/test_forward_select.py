"""forward_targets: one candidate per other node, never this node, rotated by turn."""

from __future__ import annotations

from burrow.ipc.messages import ConnectorInfo
from burrow.routing.forward_select import forward_targets

TID = "4d21094e-b74c-4916-86c1-d9fa36ea677b"


def info(cid: str, node: str, address: str = "10.0.0.1:8443") -> ConnectorInfo:
    return ConnectorInfo(TID, cid, 0, "tcp", 1, "", node, 0.0, node=node, address=address,
                         node_kind="burrow")  # fmt: skip


def test_one_per_node_sorted_and_rotated() -> None:
    remote = [info("1", "c"), info("2", "b"), info("3", "c"), info("4", "d")]
    assert [i.connector_id for i in forward_targets(remote, "a")] == ["2", "1", "4"]
    assert [i.node for i in forward_targets(remote, "a", 1)] == ["c", "d", "b"]
    assert [i.node for i in forward_targets(remote, "a", 5)] == ["d", "b", "c"]


def test_never_this_node_nor_an_entry_without_address_nor_a_local_one() -> None:
    local = ConnectorInfo(TID, "9", 1, "tcp", 1, "relay", "1.2.3.4:5", 0.0)
    remote = [info("1", "a"), info("2", "b", address=""), local, info("3", "c")]
    assert [i.node for i in forward_targets(remote, "a")] == ["c"]
    assert forward_targets([info("1", "a")], "a") == []
