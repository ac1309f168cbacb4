"""ClusterClient: the node's one Redis client, on a thread with its own asyncio loop.

A thread, like admin_http.py: the supervisor's poll loop must never wait on Redis. The loop
thread writes this node's connectors (gost-plugins' layout, burrow.cluster.store), heartbeats
the node record, listens on the pub/sub channel and resyncs every ttl / 3; what it learns goes
back to the poll loop as :class:`RemoteSync` / :class:`StoreState` through ``post`` (the
bridge's queue + eventfd), which applies them to the Registry. Redis unreachable: one
StoreState(down) (the bridge drops every remote entry and raises ``cluster_down``), retries
with backoff, and on success re-registers everything and resyncs: no restart needed.
This node's own writes (record, entries, leaving) are in cluster_writes.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, cast

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from burrow.cluster import store
from burrow.common.logfmt import event
from burrow.config.cluster import ClusterPlan, redis_label
from burrow.ipc.messages import ConnectorInfo, Delta

from .cluster_mirror import Mirror, Post, RemoteSync, StoreState
from .cluster_setup import ClusterSetup
from .cluster_writes import OP_TIMEOUT, NodeWriter
from .sd_http import SdServer

log = logging.getLogger("burrow.cluster")

RETRY_MIN = 0.25
# Every tunnel hash is re-read this many TTLs apart (node records every ttl / 3).
FULL_TTLS = 4.0
__all__ = ["FULL_TTLS", "ClusterClient", "ClusterSetup", "NameInUse", "RemoteSync", "StoreState"]
RETRY_MAX = 5.0

Key = tuple[str, str]


class NameInUse(RedisError):
    """Another live node has this node's name (retried like an outage)."""


@dataclass
class ClusterStatus:
    """What ``/api/cluster`` shows of the client (read under the lock from other threads)."""

    redis: str = "connecting"
    reason: str = ""
    since: float = field(default_factory=time.time)
    outages: int = 0


class ClusterClient(NodeWriter):
    """Registers this node's connectors in Redis and mirrors the other nodes' (see module doc)."""

    def __init__(self, plan: ClusterPlan, *, advertise: str, address: str, post: Post) -> None:
        self.plan = plan
        self.advertise = advertise
        # What gost nodes dial to forward to us (the internal listener, else the advertise).
        self.address = address
        self._post = post
        self._local: dict[Key, ConnectorInfo] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping: asyncio.Event | None = None
        self._changes: asyncio.Queue[tuple[bool, Key, ConnectorInfo | None]] | None = None
        self._wake = threading.Event()
        self.start_error: str | None = None
        self._lock = threading.Lock()
        self._status = ClusterStatus()
        self._up = False
        self._joined = False
        self._said_duplicate = False
        self.mirror = Mirror(plan.node, plan.ttl, post)
        self._resync_now: asyncio.Event | None = None
        self.period = max(0.2, plan.ttl / 3)

    # ---- any thread ----

    def start(self) -> str | None:
        """Run the client on its own thread; why not (the SD API could not bind), or None."""
        self._thread = threading.Thread(target=self._main, name="cluster-redis", daemon=True)
        self._thread.start()
        self._wake.wait(OP_TIMEOUT)
        return self.start_error

    def local_delta(self, delta: Delta) -> None:
        """A published Registry change: pick out this node's connectors (thread-safe)."""
        loop = self._loop
        ups = [i for i in delta.up if not i.node]
        if loop is None or (not ups and not delta.down):
            return
        with contextlib.suppress(RuntimeError):  # the loop has ended: the node has left
            loop.call_soon_threadsafe(self._on_local, ups, list(delta.down))

    def leave(self) -> None:
        """Start leaving now (the node is stopping): entries and record go, others told."""
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stopping.set)

    def status(self) -> dict[str, Any]:
        """Plain data for the admin API."""
        with self._lock:
            s = ClusterStatus(self._status.redis, self._status.reason, self._status.since,
                              self._status.outages)  # fmt: skip
        up = s.redis == "up"
        me = {"node": self.plan.node, "advertise": self.advertise, "address": self.address,
              "kind": store.KIND_BURROW, "alive": True, "self": True}  # fmt: skip
        return {
            "node": self.plan.node, "advertise": self.advertise, "address": self.address,
            "redis": s.redis, "reason": s.reason, "since": s.since,
            "nodes": [me, *self.mirror.rows] if up else [],
            "outages": s.outages, "resyncs": self.mirror.passes, "ttl": self.plan.ttl,
        }  # fmt: skip

    def close(self, timeout: float = 3.0) -> None:
        """Deregister this node (best effort, bounded) and stop the thread."""
        self.leave()
        if self._thread is not None:
            self._thread.join(timeout)

    # ---- loop thread ----

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._stopping = asyncio.Event()
        self._resync_now = asyncio.Event()
        self._changes = asyncio.Queue()
        sd: SdServer | None = None
        sd_client = self._client() if self.plan.sd_host is not None else None
        try:
            if sd_client is not None and self.plan.sd_host is not None:
                sd = SdServer(sd_client, self.plan.sd_host, self.plan.sd_port,
                              token=self.plan.sd_token, ttl=self.plan.ttl)  # fmt: skip
                try:
                    loop.run_until_complete(sd.start())
                except OSError as exc:
                    self.start_error = f"SD API on {self.plan.sd_host}:{self.plan.sd_port}: {exc}"
                    sd = None
                    return
            self._wake.set()
            loop.run_until_complete(self._run())
        finally:
            self._wake.set()
            if sd is not None:
                loop.run_until_complete(sd.close())
            if sd_client is not None:
                with contextlib.suppress(Exception):
                    loop.run_until_complete(sd_client.aclose())
            loop.close()

    def _on_local(self, ups: list[ConnectorInfo], downs: list[Key]) -> None:
        assert self._changes is not None
        for key in downs:
            if self._local.pop(key, None) is not None:
                self._changes.put_nowait((False, key, None))
        for info in ups:
            key = (info.tunnel_id, info.connector_id)
            self._local[key] = info
            self._changes.put_nowait((True, key, info))

    def _client(self) -> aioredis.Redis:
        return aioredis.Redis.from_url(
            self.plan.redis,
            socket_timeout=OP_TIMEOUT,
            socket_connect_timeout=OP_TIMEOUT,
            retry=Retry(NoBackoff(), 0),
            decode_responses=True,
        )

    async def _run(self) -> None:
        assert self._stopping is not None
        backoff = RETRY_MIN
        while not self._stopping.is_set():
            client = self._client()
            try:
                await self._session(client)
            except (RedisError, OSError, TimeoutError) as exc:
                self._set_down(f"{type(exc).__name__}: {exc}")
            except Exception as exc:  # noqa: BLE001 - a bug here must not end the membership
                where = traceback.extract_tb(exc.__traceback__)[-1]
                event(log, logging.ERROR, "cluster.client_error", error=repr(exc),
                      at=f"{where.filename}:{where.lineno}")  # fmt: skip
                self._set_down(f"internal error: {exc!r}")
            finally:
                with contextlib.suppress(Exception):
                    await client.aclose()
            if self._stopping.is_set():
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), backoff)
            # Capped by ttl too: a store back is noticed within about one renew period.
            backoff = min(backoff * 2, RETRY_MAX, max(RETRY_MIN, self.plan.ttl / 2))
            if self._up:
                backoff = RETRY_MIN
        await self._leave()

    async def _session(self, client: aioredis.Redis) -> None:
        assert self._changes is not None and self._stopping is not None
        await client.ping()
        await self._check_name(client)
        pubsub: Any = client.pubsub()
        try:
            await pubsub.subscribe(store.CHANNEL)
            while not self._changes.empty():  # register_all writes the whole local set
                self._changes.get_nowait()
            await self._heartbeat(client)
            # The others re-read the node records now, not at their next pass (ttl / 3): a
            # node that joins holding no tunnel is listed by them at once.
            await client.publish(
                store.CHANNEL, store.encode_message(store.Message("node_up", node=self.plan.node))
            )
            await self._renew(client)
            await self.mirror.full(client, self._local)
            self._set_up()
            tasks = [
                asyncio.ensure_future(coro)
                for coro in (
                    self._beats(client),
                    self._resyncs(client),
                    self._listen(client, pubsub),
                    self._writes(client),
                )
            ]
            stop = asyncio.ensure_future(self._stopping.wait())
            try:
                done, _ = await asyncio.wait([*tasks, stop], return_when=asyncio.FIRST_COMPLETED)
            finally:
                for t in [*tasks, stop]:
                    t.cancel()
                await asyncio.gather(*tasks, stop, return_exceptions=True)
            for t in done:
                if t is not stop and t.exception() is not None:
                    raise t.exception()  # type: ignore[misc]
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    async def _check_name(self, client: aioredis.Redis) -> None:
        """Refuse to join while a live node with another advertise address has our name.

        Two processes sharing a name would each delete the other's entries as stale; this node
        waits (retrying like an outage) until the other's heartbeat stops.
        """
        if self._up:
            return
        fields = cast(dict[str, str], await client.hgetall(store.node_key(self.plan.node)))
        other = store.decode_node(self.plan.node, fields) if fields else None
        if other is None or other.advertise == self.advertise:
            return
        if not self.mirror.liveness().node_alive(other):
            return
        if not self._said_duplicate:
            self._said_duplicate = True
            event(log, logging.ERROR, "cluster.duplicate_node", node=self.plan.node,
                  other=other.advertise, advertise=self.advertise,
                  fix="give every node its own burrow.cluster.node name")  # fmt: skip
        raise NameInUse(f"node name {self.plan.node!r} is in use by {other.advertise}")

    async def _beats(self, client: aioredis.Redis) -> None:
        last_renew = time.monotonic()
        while True:
            await asyncio.sleep(self.period)  # the heartbeat's period, not a synchronisation
            await self._heartbeat(client)
            if time.monotonic() - last_renew >= self.plan.ttl:
                last_renew = time.monotonic()
                await self._renew(client)

    async def _resyncs(self, client: aioredis.Redis) -> None:
        """Node records every ttl / 3 (cheap); every tunnel hash only every FULL_TTLS x ttl.

        Entry changes arrive by pub/sub; the full read is the safety net (and prunes), so
        its cost, which grows with the tunnel count, is paid rarely (tests/bench)."""
        assert self._resync_now is not None
        last_full = time.monotonic()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._resync_now.wait(), self.mirror.next_resync(self.period)
                )
            self._resync_now.clear()
            if time.monotonic() - last_full >= FULL_TTLS * self.plan.ttl:
                last_full = time.monotonic()
                await self.mirror.full(client, self._local)
            else:
                await self.mirror.refresh_nodes(client)

    async def _listen(self, client: aioredis.Redis, pubsub: Any) -> None:
        while True:
            msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
            if msg is None or msg.get("type") != "message":
                continue
            notice = store.decode_message(msg.get("data") or "")
            if notice is None or notice.node == self.plan.node:
                continue
            if notice.op in ("node_up", "node_down") or not notice.name:
                assert self._resync_now is not None
                self._resync_now.set()
            else:
                await self.mirror.tunnel(client, notice.name)

    def _set_up(self) -> None:
        self._post(StoreState(down=False))
        first, self._joined = not self._joined, True
        with self._lock:
            self._status.redis, self._status.reason, self._status.since = "up", "", time.time()
        self._up = True
        if first:
            event(log, logging.INFO, "cluster.joined", node=self.plan.node,
                  advertise=self.advertise, redis=redis_label(self.plan.redis))  # fmt: skip
        else:
            event(log, logging.WARNING, "cluster.redis_up", node=self.plan.node,
                  action="re-registered this node's connectors and resynced")  # fmt: skip

    def _set_down(self, reason: str) -> None:
        was_up = self._up
        self._up = False
        with self._lock:
            if self._status.redis == "down":
                return
            first = self._status.redis == "connecting"
            self._status.redis, self._status.reason, self._status.since = (
                "down",
                reason,
                time.time(),
            )
            self._status.outages += 1
        self._post(StoreState(down=True, reason=reason))
        event(log, logging.ERROR, "cluster.redis_down", node=self.plan.node,
              redis=redis_label(self.plan.redis), error=reason,
              action="serving local tunnels only; cross-node requests get 503 until Redis is back",
              was_up=was_up, first_attempt=first)  # fmt: skip
