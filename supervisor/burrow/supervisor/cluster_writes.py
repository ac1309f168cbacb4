"""This node's writes to Redis: its node record, its connector entries, and leaving.

``NodeWriter`` is a mixin of ``ClusterClient`` (cluster_client.py), which owns the state
declared here and runs these coroutines on its loop thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from burrow.cluster import store
from burrow.common.logfmt import event
from burrow.config.cluster import ClusterPlan
from burrow.ipc.messages import ConnectorInfo

from .cluster_mirror import Key

log = logging.getLogger("burrow.cluster")

# Every Redis call gives up after this long: a stalled store counts as a down one.
OP_TIMEOUT = 2.0
# KEYS[1] the index set, KEYS[2..] tunnel hashes; ARGV[1] the EXPIRE, then connector, value.
_RENEW = """
for i = 2, #KEYS do
  redis.call('HSET', KEYS[i], ARGV[2 * i - 2], ARGV[2 * i - 1])
  redis.call('EXPIRE', KEYS[i], ARGV[1])
  redis.call('SADD', KEYS[1], KEYS[i])
end
return #KEYS - 1
"""
RENEW_BATCH = 2000


class NodeWriter:
    """Heartbeats, batched renewals, connector (de)registrations and the leave; a mixin."""

    # Set up by ClusterClient.__init__ (cluster_client.py).
    plan: ClusterPlan
    advertise: str
    address: str
    _local: dict[Key, ConnectorInfo]
    _changes: asyncio.Queue[tuple[bool, Key, ConnectorInfo | None]] | None
    _up: bool

    def _client(self) -> aioredis.Redis:
        raise NotImplementedError  # ClusterClient's

    def _entry_for(self, network: str, now: float) -> str:
        return store.encode_entry(
            store.Entry(self.plan.node, network, self.address, int(now), store.KIND_BURROW)
        )

    def _entry(self, info: ConnectorInfo, now: float) -> str:
        return store.encode_entry(
            store.Entry(self.plan.node, info.network, self.address, int(now), store.KIND_BURROW)
        )

    async def _heartbeat(self, client: aioredis.Redis) -> None:
        record = store.NodeRecord(self.plan.node, self.advertise, self.address, time.time())
        key = store.node_key(self.plan.node)
        async with client.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=dict(store.encode_node(record)))  # type: ignore[arg-type]
            pipe.expire(key, math.ceil(2 * self.plan.ttl))
            pipe.sadd(store.NODES, self.plan.node)
            await pipe.execute()

    async def _renew(self, client: aioredis.Redis) -> None:
        if not self._local:
            return
        now = time.time()
        # One script call per RENEW_BATCH entries rather than three commands each: the
        # client-side cost of a pipeline is per command (tests/bench/cluster_membership.py).
        entries = {net: self._entry_for(net, now) for net in store.NETWORKS}
        items = list(self._local.items())
        for i in range(0, len(items), RENEW_BATCH):
            batch = items[i : i + RENEW_BATCH]
            keys = [store.TUNNELS, *(tid for (tid, _), _ in batch)]
            args: list[str | int] = [store.KEY_EXPIRY]
            for (_, cid), info in batch:
                args += [cid, entries.get(info.network) or self._entry(info, now)]
            await client.eval(_RENEW, len(keys), *keys, *args)

    async def _writes(self, client: aioredis.Redis) -> None:
        assert self._changes is not None
        while True:
            up, (tid, cid), info = await self._changes.get()
            name = self.plan.node
            async with client.pipeline(transaction=False) as pipe:
                if up and info is not None:
                    pipe.hset(tid, cid, self._entry(info, time.time()))
                    pipe.expire(tid, store.KEY_EXPIRY)
                    pipe.sadd(store.TUNNELS, tid)
                    op = "register"
                else:
                    pipe.hdel(tid, cid)
                    op = "deregister"
                pipe.publish(store.CHANNEL, store.encode_message(store.Message(op, tid, cid, name)))
                await pipe.execute()

    async def _leave(self) -> None:
        """Graceful stop: remove this node's entries and record, tell the others (bounded)."""
        if not self._up:
            return
        assert self._changes is not None
        keys = set(self._local)
        while not self._changes.empty():  # closed but not yet written: remove them too
            keys.add(self._changes.get_nowait()[1])
        client = self._client()
        try:
            async with client.pipeline(transaction=False) as pipe:
                for tid, cid in sorted(keys):
                    pipe.hdel(tid, cid)
                pipe.delete(store.node_key(self.plan.node))
                pipe.srem(store.NODES, self.plan.node)
                pipe.publish(
                    store.CHANNEL,
                    store.encode_message(store.Message("node_down", node=self.plan.node)),
                )
                await asyncio.wait_for(pipe.execute(), OP_TIMEOUT)
            event(log, logging.INFO, "cluster.left", node=self.plan.node, connectors=len(keys))
        except (RedisError, OSError, TimeoutError) as exc:
            event(log, logging.WARNING, "cluster.leave_failed", node=self.plan.node, error=str(exc))
        finally:
            with contextlib.suppress(Exception):
                await client.aclose()
