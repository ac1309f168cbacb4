"""ClusterClient's Redis work against a real redis-server, one coroutine at a time (no thread)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import pytest
import redis.asyncio as aioredis
from e2e.redis_server import RedisServer

from burrow.cluster import store
from burrow.config.cluster import ClusterPlan
from burrow.ipc.messages import ConnectorInfo
from burrow.supervisor.cluster_client import ClusterClient, NameInUse, RemoteSync, StoreState

T1 = "4d21094e-b74c-4916-86c1-d9fa36ea677b"
T2 = "ac74d9dd-3125-442a-a7c1-f9e49e05faca"
TTL = 2.0


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    s = RedisServer()
    yield s
    s.close()


def client_for(
    server: RedisServer, node: str = "a"
) -> tuple[ClusterClient, list[RemoteSync | StoreState]]:
    posts: list[RemoteSync | StoreState] = []
    plan = ClusterPlan(server.url, node, "127.0.0.2", 8443, "s" * 20, TTL)
    return ClusterClient(
        plan, advertise="127.0.0.2:8443", address="127.0.0.2:9000", post=posts.append
    ), posts


def run(coro: object) -> None:
    async def go() -> None:
        await asyncio.wait_for(coro, 10)  # type: ignore[arg-type]

    asyncio.run(go())


def info(tid: str, cid: str, network: str = "tcp") -> ConnectorInfo:
    return ConnectorInfo(tid, cid, 0, network, 1, "relay", "p", 0.0)


async def _with_redis(server: RedisServer, fn: object) -> None:
    r = aioredis.Redis.from_url(server.url, decode_responses=True)
    try:
        await r.flushdb()
        await fn(r)  # type: ignore[operator]
    finally:
        await r.aclose()


def test_renew_writes_gost_plugins_entries_with_expiry_and_index(server: RedisServer) -> None:
    me, _ = client_for(server)
    me._local = {(T1, "c1"): info(T1, "c1"), (T2, "c2"): info(T2, "c2", "udp")}

    async def check(r: aioredis.Redis) -> None:
        before = int(time.time())
        await me._renew(r)
        for tid, cid, net in ((T1, "c1", "tcp"), (T2, "c2", "udp")):
            entry = json.loads(await r.hget(tid, cid) or "{}")
            assert (entry["Node"], entry["Network"], entry["Address"], entry["Kind"]) == (
                "a",
                net,
                "127.0.0.2:9000",
                "burrow",
            )
            assert entry["Renew"] >= before
            assert 0 < await r.ttl(tid) <= store.KEY_EXPIRY
        assert await r.smembers(store.TUNNELS) == {T1, T2}

    run(_with_redis(server, check))


def test_a_dead_node_is_dropped_from_the_cache_without_reading_hashes(server: RedisServer) -> None:
    me, posts = client_for(server)

    async def check(r: aioredis.Redis) -> None:
        now = time.time()
        for node, adv in (("b", "127.0.0.3:8443"), ("c", "127.0.0.4:8443")):
            rec = store.NodeRecord(node, adv, adv, now)
            await r.hset(store.node_key(node), mapping=dict(store.encode_node(rec)))  # type: ignore[arg-type]
            await r.sadd(store.NODES, node)
            e = store.Entry(node, "tcp", adv, int(now), store.KIND_BURROW)
            await r.hset(T1, f"{node}1", store.encode_entry(e))
        await r.sadd(store.TUNNELS, T1)
        # A stale entry of this node (a previous process) is deleted by the full read.
        await r.hset(
            T1, "old", store.encode_entry(store.Entry("a", "tcp", "x", int(now), store.KIND_BURROW))
        )
        await me.mirror.full(r, me._local)
        full = posts[-1]
        assert isinstance(full, RemoteSync) and full.full
        assert sorted((c.node, c.address) for c in full.tunnels[T1]) == [
            ("b", "127.0.0.3:8443"),
            ("c", "127.0.0.4:8443"),
        ]
        assert not await r.hexists(T1, "old")
        n = len(posts)
        await me.mirror.refresh_nodes(r)  # nothing changed: nothing posted
        assert len(posts) == n
        await r.delete(store.node_key("c"))
        await r.hset(T1, "b2", "not read by a node pass")
        await me.mirror.refresh_nodes(r)
        after = posts[-1]
        assert isinstance(after, RemoteSync) and after.full
        assert [c.connector_id for c in after.tunnels[T1]] == ["b1"]
        # The next resync is due when b's heartbeat turns 1.5 x ttl old, not a period later.
        assert (
            me.mirror.next_resync(me.period)
            <= store.NODE_DEAD_TTLS * TTL - (time.time() - now) + 0.05
        )

    run(_with_redis(server, check))


def test_a_taken_name_refuses_to_join(server: RedisServer) -> None:
    me, _ = client_for(server, "b")

    async def check(r: aioredis.Redis) -> None:
        rec = store.NodeRecord("b", "10.9.9.9:8443", "10.9.9.9:8443", time.time())
        await r.hset(store.node_key("b"), mapping=dict(store.encode_node(rec)))  # type: ignore[arg-type]
        with pytest.raises(NameInUse):
            await me._check_name(r)
        # Our own record (same advertise, e.g. after a crash and restart) is no conflict.
        same = store.NodeRecord("b", me.advertise, me.advertise, time.time())
        await r.hset(store.node_key("b"), mapping=dict(store.encode_node(same)))  # type: ignore[arg-type]
        await me._check_name(r)

    run(_with_redis(server, check))
