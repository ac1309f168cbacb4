"""Mirror: the read side of the cluster client, what this node knows of the other nodes.

Runs on the cluster client's loop. It keeps the other nodes' records and a cache of their
decoded entries, and posts what is live to the poll loop (the bridge) as :class:`RemoteSync`:

- ``full``: every tunnel hash and node record (at (re)connection and every FULL_TTLS x ttl);
  also prunes the index and deletes this node's entries that are no longer local;
- ``refresh_nodes``: node records only (every ttl / 3 and when a node would turn dead); the
  remote set is re-derived from the cache only when the live nodes changed;
- ``tunnel``: one tunnel's hash, on a pub/sub notice.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, cast

import redis.asyncio as aioredis

from burrow.cluster import store
from burrow.ipc.messages import ConnectorInfo

# Deletes a tunnel's index entry only if its hash is gone, atomically (a register racing the
# cleanup re-creates the hash first, so it keeps its index entry).
_PRUNE = "if redis.call('EXISTS', KEYS[1]) == 0 then return redis.call('SREM', KEYS[2], KEYS[1]) end return 0"

Key = tuple[str, str]


@dataclass(frozen=True, slots=True)
class RemoteSync:
    """Other nodes' live connectors: of every tunnel (``full``) or of the tunnels listed."""

    tunnels: dict[str, list[ConnectorInfo]]
    full: bool


@dataclass(frozen=True, slots=True)
class StoreState:
    """Redis became reachable (down False) or unreachable (down True, with why)."""

    down: bool
    reason: str = ""


Post = Callable[[RemoteSync | StoreState], None]


class Mirror:
    """The other nodes' records and entries as last read (see module doc)."""

    def __init__(self, node: str, ttl: float, post: Post) -> None:
        self.node = node
        self.ttl = ttl
        self._post = post
        self.nodes: dict[str, store.NodeRecord] = {}
        # The other nodes' entries by tunnel: a membership change (a node dead or back) is
        # applied from here without re-reading every tunnel hash.
        self.entries: dict[str, dict[str, store.Entry]] = {}
        self._gost_tunnels: set[str] = set()
        self._alive: tuple[tuple[str, str], ...] = ()
        # The other nodes as /api/cluster shows them; swapped whole (read by the admin thread).
        self.rows: list[dict[str, Any]] = []
        self.passes = 0

    def liveness(self) -> store.Liveness:
        """The liveness rules as of now."""
        return store.Liveness(self.node, self.ttl, time.time())

    def next_resync(self, period: float) -> float:
        """Seconds to the next node pass: ``period``, or sooner when a node would turn dead.

        A node whose heartbeat stops is then dropped right at 1.5 x ttl after its last one,
        not up to a period later."""
        live = self.liveness()
        deaths = [
            r.heartbeat + store.NODE_DEAD_TTLS * self.ttl - live.now
            for r in self.nodes.values()
            if live.node_alive(r)
        ]
        return max(0.02, min([period, *(d + 0.02 for d in deaths)]))

    async def _read_nodes(self, client: aioredis.Redis, names: set[str]) -> None:
        names = {n for n in names if n and n != self.node}
        if not names:
            return
        ordered = sorted(names)
        async with client.pipeline(transaction=False) as pipe:
            for n in ordered:
                pipe.hgetall(store.node_key(n))
            rows = await pipe.execute()
        for n, fields in zip(ordered, rows, strict=True):
            rec = store.decode_node(n, fields) if fields else None
            if rec is None:
                self.nodes.pop(n, None)
            else:
                self.nodes[n] = rec

    def _cache(self, tunnel_id: str, entries: dict[str, store.Entry]) -> None:
        others = {cid: e for cid, e in entries.items() if e.node != self.node}
        if others:
            self.entries[tunnel_id] = others
        else:
            self.entries.pop(tunnel_id, None)
        if any(e.kind == store.KIND_GOST for e in others.values()):
            self._gost_tunnels.add(tunnel_id)
        else:
            self._gost_tunnels.discard(tunnel_id)

    def _alive_nodes(self, live: store.Liveness) -> tuple[tuple[str, str], ...]:
        return tuple(
            sorted((r.name, r.advertise) for r in self.nodes.values() if live.node_alive(r))
        )

    def _remote(self, tunnel_id: str, live: store.Liveness) -> list[ConnectorInfo]:
        entries = self.entries.get(tunnel_id, {})
        return store.remote_from_entries(tunnel_id, entries, self.nodes, live)

    async def tunnel(self, client: aioredis.Redis, tunnel_id: str) -> None:
        """Re-read one tunnel's hash (a pub/sub notice named it) and post it."""
        fields = cast(dict[str, str], await client.hgetall(tunnel_id))
        entries = store.decode_entries(fields)
        known = set(self.nodes)
        await self._read_nodes(client, {e.node for e in entries.values()})
        self._cache(tunnel_id, entries)
        live = self.liveness()
        conns = self._remote(tunnel_id, live)
        self._post(RemoteSync({tunnel_id: conns}, full=False))
        if self.nodes.keys() != known:
            # A node first seen through its connector (it joined after our last node pass):
            # /api/cluster lists it now, not a pass later, beside the tunnel it holds.
            self._show(live)

    async def refresh_nodes(self, client: aioredis.Redis) -> None:
        """Re-read the node records; re-derive the remote set only when liveness changed."""
        names = cast(set[str], await client.smembers(store.NODES))
        self.nodes = {}
        await self._read_nodes(client, names)
        live = self.liveness()
        alive = self._alive_nodes(live)
        if alive != self._alive:
            self._alive = alive
            out = {tid: conns for tid in self.entries if (conns := self._remote(tid, live))}
            self._post(RemoteSync(out, full=True))
        elif self._gost_tunnels:
            # gost entries age out by their Renew, not by a node record.
            self._post(
                RemoteSync({t: self._remote(t, live) for t in self._gost_tunnels}, full=False)
            )
        self._show(live)

    async def full(self, client: aioredis.Redis, local: Collection[Key]) -> None:
        """Read everything, post the whole remote set, prune; ``local``: this node's keys."""
        names = cast(set[str], await client.smembers(store.NODES))
        tunnels = sorted(cast(set[str], await client.smembers(store.TUNNELS)))
        self.nodes = {}
        await self._read_nodes(client, names)
        gone_nodes = names - set(self.nodes) - {self.node}
        rows: list[dict[str, str]] = []
        if tunnels:
            async with client.pipeline(transaction=False) as pipe:
                for tid in tunnels:
                    pipe.hgetall(tid)
                rows = await pipe.execute()
        live = self.liveness()
        out: dict[str, list[ConnectorInfo]] = {}
        self.entries, self._gost_tunnels = {}, set()
        async with client.pipeline(transaction=False) as pipe:
            for tid, fields in zip(tunnels, rows, strict=True):
                if not fields:
                    pipe.eval(_PRUNE, 2, tid, store.TUNNELS)
                    continue
                entries = store.decode_entries(fields)
                # Ours but no longer local: closed while Redis was away, or a previous process.
                for cid, entry in entries.items():
                    if entry.node == self.node and (tid, cid) not in local:
                        pipe.hdel(tid, cid)
                self._cache(tid, entries)
                conns = self._remote(tid, live)
                if conns:
                    out[tid] = conns
            for n in gone_nodes:
                pipe.srem(store.NODES, n)
            await pipe.execute()
        self._alive = self._alive_nodes(live)
        self._post(RemoteSync(out, full=True))
        self._show(live)

    def _show(self, live: store.Liveness) -> None:
        gost = {t: self._remote(t, live) for t in self._gost_tunnels}
        self.passes += 1
        self.rows = [
            *(
                {"node": r.name, "advertise": r.advertise, "address": r.address,
                 "kind": store.KIND_BURROW, "alive": live.node_alive(r), "self": False,
                 "heartbeat_age": round(live.now - r.heartbeat, 3)}
                for r in sorted(self.nodes.values(), key=lambda r: r.name)
            ),
            *_gost_nodes(gost),
        ]  # fmt: skip


def _gost_nodes(tunnels: dict[str, list[ConnectorInfo]]) -> list[dict[str, Any]]:
    """gost nodes (no node record) as seen through their live entries, one row each."""
    seen: dict[str, set[str]] = {}
    for conns in tunnels.values():
        for c in conns:
            if c.node_kind == store.KIND_GOST:
                seen.setdefault(c.node, set()).add(c.address)
    return [
        {"node": node, "advertise": "", "address": ",".join(sorted(addrs)),
         "kind": store.KIND_GOST, "alive": True, "self": False}
        for node, addrs in sorted(seen.items())
    ]  # fmt: skip
