"""Issue 14 membership: nodes register their connectors in Redis (gost-plugins' layout) and
mirror each other's; removals arrive by pub/sub; a dead node is dropped within 2 x TTL; Redis
down keeps local service and says so; Redis back resyncs without a restart.

One module-scoped cluster (Redis on a unix socket, nodes a/b/c on 127.0.0.2-4, 2 workers each).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from e2e.cluster_harness import Cluster, node_config
from e2e.conftest import TUNNEL_A, TUNNEL_B
from e2e.harness import client_config, client_service, forward_node, subprocess_env, wait_for
from e2e.peers import HttpPeer

HOST = "a.cluster.example"
# A gost server's node ID (gost uses a random UUID per process).
GOST_NODE = "5b6c1d0e-93c2-4a55-9d7e-0c2f4e8f1a11"


@pytest.fixture(scope="module")
def peer() -> HttpPeer:
    p = HttpPeer("web-a")
    yield p  # type: ignore[misc]
    p.close()


def test_connectors_are_registered_in_gost_layout_and_mirrored(
    cluster: Cluster, peer: HttpPeer
) -> None:
    nodes = cluster.start_all(rules=[(HOST, TUNNEL_A)], sd=True)
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


def test_a_gost_sd_client_registers_renews_and_deregisters(cluster: Cluster) -> None:
    b = cluster.nodes["b"]
    svc = {"id": "gost-conn-1", "name": TUNNEL_B, "node": GOST_NODE, "network": "tcp",
           "address": "127.0.0.9:18080"}  # fmt: skip
    assert b.sd_call("POST", svc, token=None)[0] == 401
    assert b.sd_call("POST", svc, token="wrong-token-0123456789")[0] == 401
    assert b.sd_call("POST", svc) == (200, {"ok": True})
    status, got = b.sd_call("GET", query=f"name={TUNNEL_B}")
    assert status == 200 and got == {"services": [svc]}
    # Stored in gost-plugins' layout (no "Kind": a gost node's entry) ...
    entry = json.loads(cluster.redis.client().hget(TUNNEL_B, "gost-conn-1") or "{}")
    assert entry.keys() == {"Node", "Network", "Address", "Renew"}
    # ... and every node (the one serving the API too) routes it to the gost node's address.
    for name in ("a", "c", "b"):
        cluster.wait_tunnel(name, TUNNEL_B, on=GOST_NODE)
        (row,) = cluster.nodes[name].cluster()["tunnels"][TUNNEL_B]
        assert (row["kind"], row["address"]) == ("gost", "127.0.0.9:18080")

    def gost_rows() -> list[dict[str, object]] | None:
        rows = [n for n in cluster.nodes["a"].cluster()["nodes"] if n["kind"] == "gost"]
        return rows or None

    # Listed among the nodes from the next full resync (within ttl / 3).
    assert wait_for("a to list the gost node", gost_rows, 5.0) == [
        {"node": GOST_NODE, "advertise": "", "address": "127.0.0.9:18080", "kind": "gost",
         "alive": True, "self": False}
    ]  # fmt: skip
    assert b.sd_call("PUT", svc) == (200, {"ok": True})
    assert b.sd_call("PUT", {**svc, "id": "unknown"}) == (200, {"ok": False})
    assert b.sd_call("PATCH", svc)[0] == 405
    assert b.sd_call("DELETE", svc) == (200, {"ok": True})
    for name in ("a", "c"):
        cluster.wait_tunnel(name, TUNNEL_B, on=None, timeout=2.0)
    assert b.sd_call("GET", query=f"name={TUNNEL_B}") == (200, {"services": []})
    wait_for("c to stop listing the gost node",
             lambda: all(n["kind"] != "gost" for n in cluster.nodes["c"].cluster()["nodes"]) or None,
             5.0)  # fmt: skip


def test_burrow_status_shows_nodes_and_where_each_tunnel_lives(cluster: Cluster) -> None:
    c = cluster.nodes["c"]
    out = subprocess.run(
        [sys.executable, "-m", "burrow.supervisor", "status", "--admin", c.admin,
         "--interval", "0.05"],
        capture_output=True, text=True, timeout=20, env=subprocess_env(), check=True,
    ).stdout  # fmt: skip
    assert "cluster: node c" in out and "redis up" in out and "nodes alive 3" in out
    assert re.search(rf"^{TUNNEL_A[:8]}\s+a \(burrow, tcp\)$", out, re.MULTILINE), out
    assert re.search(r"^a\s+burrow\s+yes\s+127\.0\.0\.2:\d+", out, re.MULTILINE), out
    data = json.loads(
        subprocess.run(
            [sys.executable, "-m", "burrow.supervisor", "status", "--admin", c.admin, "--json"],
            capture_output=True, text=True, timeout=20, env=subprocess_env(), check=True,
        ).stdout
    )  # fmt: skip
    assert data["cluster"]["tunnels"][TUNNEL_A][0]["node"] == "a"


def test_a_node_starts_and_serves_while_redis_is_unreachable(cluster: Cluster) -> None:
    d = cluster.start_node(
        "d", host="127.0.0.5", rules=[(HOST, TUNNEL_A)], workers=1, wait=False,
        cluster={"redis": "unix:///nonexistent/burrow-test/redis.sock"},
    )  # fmt: skip
    d.proc.wait_ready()
    d.proc.wait_log(r"cluster\.redis_down node=d .*action=\"serving local tunnels only")
    view = d.cluster()
    assert view["redis"] == "down" and view["cluster_down"] is True
    assert d.api("/readyz")["ready"] is True
    cluster.stop("d")


def test_a_second_node_with_a_taken_name_does_not_join(cluster: Cluster) -> None:
    b = cluster.nodes["b"]
    config = node_config("b", "127.0.0.5", cluster.redis.url, rules=[(HOST, TUNNEL_A)])
    twin = cluster.launcher.start("node-b-twin", config, workers=1)
    twin.wait_log(r"cluster\.duplicate_node node=b .*fix=")
    assert "cluster.joined" not in twin.stderr()
    # The first b is untouched: its record, its view of a's tunnel.
    assert cluster.redis.client().hget("burrow:node:b", "advertise") == b.relay.address
    assert b.tunnel_nodes(TUNNEL_A) == {"a"}
    twin.stop()
    assert twin.stderr().count("cluster.duplicate_node") == 1


def test_a_stopped_node_leaves_at_once(cluster: Cluster) -> None:
    b = cluster.nodes["b"]
    r = cluster.redis.client()
    assert r.exists("burrow:node:c")
    proc = cluster.nodes["c"].proc
    cluster.stop("c")  # SIGTERM: deletes its record and entries, publishes node_down
    assert "cluster.left node=c" in proc.stderr()
    assert not r.exists("burrow:node:c") and "c" not in r.smembers("burrow:nodes")
    wait_for("b to drop c", lambda: all(n["node"] != "c" for n in b.cluster()["nodes"]) or None,
             1.0)  # fmt: skip
