"""Issue 14's failure cases, each with a request loop counting failed requests and recovery time.

One cluster for the module, in order (each test starts from where the previous one left it):

1. the tunnel client moves from node a to node c: service via b is back within 2 s;
2. node a (holding a second connector) is SIGKILLed: b and c stop choosing it within 2 x TTL;
3. Redis is stopped: local traffic on c unaffected, cross-node requests at b answered 503 with
   a clear log line, the metric says Redis is down;
4. Redis is back (empty, like a restarted server): cross-node traffic returns, no restarts.

The measured figures are printed (``pytest -s``); the bounds asserted are the issue's.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from e2e.cluster_harness import TTL, Cluster, ClusterNode
from e2e.conftest import TUNNEL_A
from e2e.harness import BurrowProcess, client_config, client_service, forward_node, wait_for
from e2e.peers import HttpPeer, http_request
from e2e.test_admin import metric, scrape

REDIS_BACK_LIMIT = 15.0  # seconds for cross-node traffic to return once Redis is back

HOST = "fail.example"
REQUEST_TIMEOUT = 1.0
UP_TIMEOUT = 15.0


@dataclass
class Loop:
    """Requests at one node's entry point, one after another; what failed and when."""

    node: ClusterNode
    ok: int = 0
    failed: list[str] = field(default_factory=list)

    def once(self) -> bool:
        try:
            status, body = http_request(
                (self.node.entry.host, self.node.entry.port), HOST, timeout=REQUEST_TIMEOUT
            )
        except OSError as exc:
            self.failed.append(type(exc).__name__)
            return False
        if status == 200 and body.startswith(b"web"):
            self.ok += 1
            return True
        self.failed.append(str(status))
        return False

    def until_ok(self, since: float, timeout: float, streak: int = 3) -> float:
        """Loop until ``streak`` successes in a row; seconds from ``since`` to the first of them."""
        deadline = time.monotonic() + timeout
        first: float | None = None
        run = 0
        while time.monotonic() < deadline:
            t = time.monotonic()
            if self.once():
                first = t if run == 0 else first
                run += 1
                if run >= streak:
                    assert first is not None
                    return first - since
            else:
                run, first = 0, None
        raise AssertionError(f"{self.node.name}: not serving after {timeout}s: {self.failed[-5:]}")


@dataclass
class World:
    cluster: Cluster
    peer: HttpPeer
    clients: dict[str, BurrowProcess] = field(default_factory=dict)

    def client_on(self, name: str) -> BurrowProcess:
        node = self.cluster.nodes[name]
        svc = client_service("web", [forward_node("web", self.peer.address, HOST)])
        proc = self.cluster.launcher.start(
            f"client-{name}", client_config(node.relay.address, TUNNEL_A, [svc])
        )
        self.clients[name] = proc
        return proc


@pytest.fixture(scope="module")
def world(cluster: Cluster) -> Iterator[World]:
    peer = HttpPeer("web")
    cluster.start_all(rules=[(HOST, TUNNEL_A)])
    w = World(cluster, peer)
    w.client_on("a")
    for name in ("b", "c"):
        cluster.wait_tunnel(name, TUNNEL_A, on="a", timeout=UP_TIMEOUT)
    yield w
    peer.close()


def _local_on(node: ClusterNode) -> bool | None:
    rows = node.cluster()["tunnels"].get(TUNNEL_A, [])
    return any(r["kind"] == "local" for r in rows) or None


def test_client_moves_to_c_and_service_is_back_within_2s(world: World) -> None:
    nodes = world.cluster.nodes
    via_b = Loop(nodes["b"])
    assert via_b.until_ok(time.monotonic(), UP_TIMEOUT) >= 0
    ok_before = via_b.ok
    dropped = time.monotonic()
    world.clients.pop("a").kill()  # the client host drops; it comes back on c
    world.client_on("c")
    # The request loop runs through the whole outage; c's admin API says when it holds it.
    held: float | None = None
    deadline = dropped + UP_TIMEOUT
    while held is None and time.monotonic() < deadline:
        via_b.once()
        if _local_on(nodes["c"]):
            held = time.monotonic()
    assert held is not None, "c never held the tunnel"
    failed_in_gap, ok_in_gap = len(via_b.failed), via_b.ok - ok_before
    recovery_b = via_b.until_ok(held, 5.0)
    recovery_a = Loop(nodes["a"]).until_ok(held, 5.0)
    print(f"\nclient a->c: service back via b {recovery_b:.3f}s after c held the tunnel "
          f"(via a {recovery_a:.3f}s); client gone until c held it: {held - dropped:.3f}s "
          f"(a new client process starting); requests via b in the gap: {ok_in_gap} ok, "
          f"{failed_in_gap} failed; failed after c held it: {len(via_b.failed) - failed_in_gap}")  # fmt: skip
    assert recovery_b <= 2.0 and recovery_a <= 2.0
    wait_for("b to forget a's closed connector",
             lambda: ("a" not in nodes["b"].tunnel_nodes(TUNNEL_A)) or None, 2.0)  # fmt: skip


def test_sigkilled_node_is_dropped_within_two_ttls(world: World) -> None:
    nodes = world.cluster.nodes
    world.client_on("a")  # a second connector, on the node about to die
    for name in ("b", "c"):
        world.cluster.wait_tunnel(name, TUNNEL_A, on="a", timeout=UP_TIMEOUT)
    a = world.cluster.nodes.pop("a")
    a.proc.kill()
    killed = time.monotonic()
    loops = {name: Loop(nodes[name]) for name in ("b", "c")}
    dropped: dict[str, float] = {}
    while len(dropped) < 2 and time.monotonic() - killed < 4 * TTL:
        for name, loop in loops.items():
            loop.once()
            if name not in dropped and "a" not in nodes[name].tunnel_nodes(TUNNEL_A):
                dropped[name] = time.monotonic() - killed
    print(f"\nnode a SIGKILLed: dropped by b after {dropped.get('b', -1):.3f}s, by c after "
          f"{dropped.get('c', -1):.3f}s (2 x TTL = {2 * TTL:g}s); failed requests: "
          f"b {len(loops['b'].failed)}/{loops['b'].ok + len(loops['b'].failed)}, "
          f"c {len(loops['c'].failed)}/{loops['c'].ok + len(loops['c'].failed)}")  # fmt: skip
    assert set(dropped) == {"b", "c"} and max(dropped.values()) <= 2 * TTL
    for loop in loops.values():
        before = len(loop.failed)
        for _ in range(5):
            assert loop.once()
        assert len(loop.failed) == before
    world.clients.pop("a").kill()


def test_redis_down_keeps_local_traffic_and_answers_503_across_nodes(world: World) -> None:
    b, c = world.cluster.nodes["b"], world.cluster.nodes["c"]
    # c holds the tunnel; b only reaches it through Redis.
    assert Loop(b).until_ok(time.monotonic(), UP_TIMEOUT) >= 0
    world.cluster.redis.stop()
    stopped = time.monotonic()
    local = Loop(c)
    wait_for("b to notice Redis is down", lambda: b.cluster()["redis"] == "down" or None, 10.0)
    noticed = time.monotonic() - stopped
    cross = Loop(b)
    for _ in range(10):
        local.once()
        cross.once()
    print(f"\nRedis stopped: b noticed after {noticed:.3f}s; local requests at c: "
          f"{local.ok} ok / {len(local.failed)} failed; cross-node at b: {cross.failed[:3]}...")  # fmt: skip
    assert local.failed == [] and local.ok == 10
    assert cross.ok == 0 and set(cross.failed) == {"503"}
    b.proc.wait_log(r"forward\.unavailable .*reason=\"the cluster store \(Redis\) is unreachable")
    b.proc.wait_log(r"cluster\.redis_down .*action=")
    assert metric(scrape(b.admin), "burrow_cluster_redis_up") == 0
    assert b.cluster()["cluster_down"] is True and b.cluster()["tunnels"].get(TUNNEL_A) is None


def test_redis_back_restores_cross_node_traffic_without_restarts(world: World) -> None:
    b, c = world.cluster.nodes["b"], world.cluster.nodes["c"]
    pids = {n.name: (n.proc.proc.pid, sorted(w["pid"] for w in n.api("/api/workers")["workers"]))
            for n in (b, c)}  # fmt: skip
    world.cluster.redis.start()  # empty: every node re-registers what it holds
    back = time.monotonic()
    cross = Loop(b)
    # Redis restarting, then a reconnect (retried every ttl/2) and a resync on every node:
    # 0.1-0.8 s on a quiet machine, 8 s seen with two whole e2e suites on the 2 cores. The
    # issue asks for traffic back without restarts; until_ok fails the test past the limit.
    recovery = cross.until_ok(back, REDIS_BACK_LIMIT)
    print(f"\nRedis back: cross-node via b after {recovery:.3f}s; failed meanwhile: "
          f"{len(cross.failed)}")  # fmt: skip
    b.proc.wait_log(r"cluster\.redis_up")
    for n in (b, c):
        assert n.proc.alive()
        now = (n.proc.proc.pid, sorted(w["pid"] for w in n.api("/api/workers")["workers"]))
        assert now == pids[n.name], f"{n.name} restarted something"
        assert n.api("/api/workers")["restarts"] == 0
    assert metric(scrape(b.admin), "burrow_cluster_redis_up") == 1
    assert TUNNEL_A in world.cluster.redis.client().smembers("burrow:tunnels")
