"""Issue 14 membership: nodes register their connectors in Redis (gost-plugins' layout) and
mirror each other's; removals arrive by pub/sub; a dead node is dropped within 2 x TTL; Redis
down keeps local service and says so; Redis back resyncs without a restart.

One module-scoped cluster (Redis on a unix socket, nodes a/b/c on 127.0.0.2-4, 2 workers each).
"""

from __future__ import annotations

import json

import pytest
from e2e.cluster_harness import Cluster
from e2e.conftest import TUNNEL_A
from e2e.harness import client_config, client_service, forward_node, wait_for
from e2e.peers import HttpPeer

HOST = "a.cluster.example"


@pytest.fixture(scope="module")
def peer() -> HttpPeer:
    p = HttpPeer("web-a")
    yield p  # type: ignore[misc]
    p.close()


def test_connectors_are_registered_in_gost_layout_and_mirrored(
    cluster: Cluster, peer: HttpPeer
) -> None:
    nodes = cluster.start_all(rules=[(HOST, TUNNEL_A)])
    a = nodes["a"]
    cluster.launcher.start(
        "client-a",
        client_config(
            a.relay.address,
            TUNNEL_A,
            [client_service("svc", [forward_node("n", peer.address, HOST)])],
        ),
    )
    r = cluster.redis.client()

    def stored() -> dict[str, str] | None:
        return r.hgetall(TUNNEL_A) or None

    fields = wait_for("A's connector in Redis", stored, 10)
    (raw,) = fields.values()
    entry = json.loads(raw)
    assert entry["Node"] == "a" and entry["Network"] == "tcp" and entry["Kind"] == "burrow"
    assert isinstance(entry["Renew"], int)
    assert TUNNEL_A in r.smembers("burrow:tunnels")
    for name in ("b", "c"):
        cluster.wait_tunnel(name, TUNNEL_A, on="a")
        view = nodes[name].cluster()
        (row,) = view["tunnels"][TUNNEL_A]
        assert row["kind"] == "burrow" and row["address"] == a.relay.address
        assert {n["node"] for n in view["nodes"] if n["alive"]} == {"a", "b", "c"}
    assert nodes["a"].cluster()["tunnels"][TUNNEL_A][0]["kind"] == "local"
