"""Cluster membership benchmark: what Redis costs the supervisor, and how fast news travels.

    python3 tests/bench/cluster_membership.py [--repeat 3] [--tunnels 1000,10000]

In one process against a real redis-server (unix socket), with the supervisor's own client
code (burrow.supervisor.cluster_client), every figure next to a baseline measured in the same
run (one Redis PING round trip):
- propagation: node x announces a connector (as its Registry publishes it), node y's client
  posts the RemoteSync that carries it (pub/sub notice + one tunnel re-read): p50 and p99 of
  200 announcements;
- full resync: reading every tunnel hash and node record and building the remote set, for
  ``--tunnels`` tunnels of 2 connectors on 2 other nodes (done every FULL_TTLS x ttl);
- node pass: the node records only, nothing changed (every ttl / 3), and the same pass when
  a node has died (the remote set re-derived from the cache);
- renew: rewriting a node's own entries, for the same counts (done every ttl).
Min-max over ``--repeat`` runs; the machine is shared, so compare within a run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
for sub in ("shared", "worker", "supervisor", "tests"):
    sys.path.insert(0, str(REPO / sub))

import redis.asyncio as aioredis
from e2e.redis_server import RedisServer

from burrow.cluster import store
from burrow.config.cluster import ClusterPlan
from burrow.ipc.messages import ConnectorInfo, Delta
from burrow.supervisor.cluster_client import (
    FULL_TTLS,
    ClusterClient,
    RemoteSync,
    StoreState,
)

SECRET = "bench-cluster-secret-0123456789"
TTL = 15.0


def plan(url: str, node: str) -> ClusterPlan:
    return ClusterPlan(url, node, "127.0.0.1", 1, SECRET, TTL)


def info(tid: str, cid: str) -> ConnectorInfo:
    return ConnectorInfo(tid, cid, 0, "tcp", 1, "relay", "127.0.0.1:1", time.time())


async def ping_rtt(url: str, n: int = 500) -> float:
    r = aioredis.Redis.from_url(url)
    try:
        await r.ping()
        t = time.perf_counter()
        for _ in range(n):
            await r.ping()
        return (time.perf_counter() - t) / n
    finally:
        await r.aclose()


def propagation(url: str, count: int = 200) -> list[float]:
    """Seconds from x's Delta to y's RemoteSync carrying the connector, per announcement."""
    seen: dict[str, float] = {}
    got = threading.Condition()

    def post_y(item: RemoteSync | StoreState) -> None:
        if isinstance(item, RemoteSync) and not item.full:
            with got:
                for conns in item.tunnels.values():
                    for c in conns:
                        seen.setdefault(c.connector_id, time.perf_counter())
                got.notify_all()

    x = ClusterClient(plan(url, "x"), advertise="127.0.0.1:1", address="127.0.0.1:1",
                      post=lambda item: None)  # fmt: skip
    y = ClusterClient(plan(url, "y"), advertise="127.0.0.1:2", address="127.0.0.1:2", post=post_y)
    x.start()
    y.start()
    try:
        for c in (x, y):
            deadline = time.monotonic() + 10
            while c.status()["redis"] != "up" and time.monotonic() < deadline:
                time.sleep(0.01)  # a bench's start-up wait, not a test synchronisation
        out = []
        for i in range(count):
            cid = f"c{i}"
            tid = str(uuid.uuid4())
            t = time.perf_counter()
            x.local_delta(Delta(seq=i + 1, up=[info(tid, cid)], down=[]))
            with got:
                if not got.wait_for(lambda cid=cid: cid in seen, timeout=5):  # type: ignore[misc]
                    raise TimeoutError(f"{cid} never reached y")
            out.append(seen[cid] - t)
        return out
    finally:
        x.close()
        y.close()


async def populate(url: str, tunnels: int) -> list[str]:
    r = aioredis.Redis.from_url(url, decode_responses=True)
    now = time.time()
    tids = [str(uuid.uuid4()) for _ in range(tunnels)]
    try:
        await r.flushdb()
        async with r.pipeline(transaction=False) as pipe:
            for node in ("b", "c"):
                rec = store.NodeRecord(node, f"10.0.0.{ord(node)}:8443", "", now + 3600)
                pipe.hset(store.node_key(node), mapping=dict(store.encode_node(rec)))  # type: ignore[arg-type]
                pipe.sadd(store.NODES, node)
            for tid in tids:
                for node in ("b", "c"):
                    e = store.Entry(node, "tcp", "x:1", int(now), store.KIND_BURROW)
                    pipe.hset(tid, f"{node}-{tid[:8]}", store.encode_entry(e))
                pipe.sadd(store.TUNNELS, tid)
            await pipe.execute()
    finally:
        await r.aclose()
    return tids


async def resync_and_renew(url: str, tids: list[str]) -> tuple[float, float, float, float]:
    posts: list[RemoteSync | StoreState] = []
    me = ClusterClient(plan(url, "a"), advertise="127.0.0.1:1", address="127.0.0.1:1",
                       post=posts.append)  # fmt: skip
    r = aioredis.Redis.from_url(url, decode_responses=True)
    try:
        t = time.perf_counter()
        await me.mirror.full(r, me._local)
        resync = time.perf_counter() - t
        full = posts[-1]
        assert isinstance(full, RemoteSync) and len(full.tunnels) == len(tids)
        # The every-ttl/3 pass: node records only, nothing changed.
        t = time.perf_counter()
        await me.mirror.refresh_nodes(r)
        light = time.perf_counter() - t
        assert posts[-1] is full
        # A node dies: the remote set is re-derived from the cache, no hash re-read.
        await r.delete(store.node_key("c"))
        t = time.perf_counter()
        await me.mirror.refresh_nodes(r)
        death = time.perf_counter() - t
        after = posts[-1]
        assert isinstance(after, RemoteSync) and all(
            c.node == "b" for conns in after.tunnels.values() for c in conns
        )
        for tid in tids:
            me._local[(tid, f"a-{tid[:8]}")] = info(tid, f"a-{tid[:8]}")
        t = time.perf_counter()
        await me._renew(r)
        renew = time.perf_counter() - t
        stored = await r.hget(tids[-1], f"a-{tids[-1][:8]}")
        assert stored and store.decode_entry(stored).node == "a"  # type: ignore[union-attr]
        return resync, renew, light, death
    finally:
        await r.aclose()


def span(values: list[float], scale: float = 1000.0, unit: str = "ms") -> str:
    lo, hi = min(values) * scale, max(values) * scale
    return f"{lo:.2f}-{hi:.2f} {unit}" if hi - lo > 0.005 else f"{lo:.2f} {unit}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--tunnels", default="1000,10000")
    args = p.parse_args()
    counts = [int(x) for x in args.tunnels.split(",")]
    server = RedisServer()
    try:
        pings: list[float] = []
        p50: list[float] = []
        p99: list[float] = []
        costs: dict[int, tuple[list[float], ...]] = {n: ([], [], [], []) for n in counts}
        for _ in range(args.repeat):
            pings.append(asyncio.run(ping_rtt(server.url)))
            asyncio.run(aioredis.Redis.from_url(server.url).flushdb())
            lat = sorted(propagation(server.url))
            p50.append(statistics.median(lat))
            p99.append(lat[int(len(lat) * 0.99) - 1])
            for n in counts:
                tids = asyncio.run(populate(server.url, n))
                for acc, v in zip(
                    costs[n], asyncio.run(resync_and_renew(server.url, tids)), strict=True
                ):
                    acc.append(v)
        ping = statistics.median(pings)
        print(f"baseline: Redis PING round trip {span(pings, 1e6, 'us')}")
        print(f"propagation x -> y: p50 {span(p50)} ({statistics.median(p50) / ping:.0f} x PING), "
              f"p99 {span(p99)}")  # fmt: skip
        for n in counts:
            resync, renew, light, death = costs[n]
            full_every = FULL_TTLS * TTL
            print(f"{n:>6} tunnels (2 remote connectors each): full resync {span(resync)} "
                  f"(every {full_every:g} s: {statistics.median(resync) / full_every * 100:.2f} % "
                  f"of a core); node pass {span(light)} (every {TTL / 3:g} s); a node's death "
                  f"applied in {span(death)}; renew of {n} own entries {span(renew)} (every "
                  f"{TTL:g} s: {statistics.median(renew) / TTL * 100:.2f} % of a core)")  # fmt: skip
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
