"""BusClient: the worker end of the membership bus (ZeroMQ Clone pattern client).

Two sockets to the supervisor's registry broker:
- SUB on ``spec.updates_endpoint``: every published Delta, fed to a MembershipView.
- DEALER on ``spec.registry_endpoint``: Hello, Ready, Heartbeat, ConnectorBatch and
  SnapshotRequest out; Snapshot replies in. Connector changes are queued and go out as one
  ConnectorBatch at the end of the loop turn, at most one per BATCH_WINDOW (and at every
  MAX_BATCH changes), so a burst of registrations costs a few messages and Deltas, not one
  per tunnel.

Order at start matters: subscribe first (and wait for the SUB handshake), then ask for the
snapshot, so every change after the snapshot is either in it or arrives as a Delta. Deltas that
come before the snapshot are buffered by the view. A gap in ``seq`` makes the view unsynced and
the client asks for a new snapshot; the heartbeat tick repeats that request while it goes
unanswered. The heartbeat runs on the event loop itself, so a wedged loop stops proving liveness.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import zmq
import zmq.asyncio
from zmq.utils.monitor import parse_monitor_message

from burrow.common.logfmt import event
from burrow.ipc.membership import MembershipView
from burrow.ipc.messages import (
    Applied,
    BusMessage,
    ConnectorBatch,
    ConnectorInfo,
    Heartbeat,
    Hello,
    MessageError,
    Ready,
    Reconfigure,
    SnapshotRequest,
    Stats,
    decode_delta,
    decode_reply,
    encode,
)
from burrow.ipc.spec import WorkerSpec

log = logging.getLogger("burrow.worker.bus")

# Bound on queued outgoing messages: a supervisor that stops reading must not grow the worker.
MAX_QUEUED_MESSAGES = 10_000
# Incoming frames larger than this are dropped by libzmq before they reach Python.
MAX_FRAME_SIZE = 16 * 1024 * 1024
# Minimum time between two SnapshotRequests while the view waits for one.
MIN_RESYNC_INTERVAL = 1.0
CLOSE_TIMEOUT = 2.0
# Connector changes per ConnectorBatch: a burst of registrations becomes a few messages (and
# a few Deltas for every worker) instead of one each, and one message stays far below the
# frame limit (a ConnectorInfo encodes to ~200 bytes).
MAX_BATCH = 1024
# At most one ConnectorBatch per this many seconds while changes keep coming: a lone change
# goes out at the end of its loop turn, a burst (thousands of BINDs) is gathered into a few
# batches, each decoded once by the supervisor and by every worker instead of once per tunnel.
BATCH_WINDOW = 0.02


class BusClient:
    """SUB + DEALER to the supervisor; keeps ``view`` in step with the registry."""

    def __init__(self, spec: WorkerSpec, *, on_change: Callable[[], None] | None = None) -> None:
        self.spec = spec
        self.view = MembershipView()
        self._on_change = on_change
        self.on_reconfigure: Callable[[Reconfigure], None] | None = None
        # Set while the admin endpoint is on: the counters that go out with every heartbeat.
        self.stats: Callable[[], Stats] | None = None
        self._ctx: zmq.asyncio.Context | None = None
        self._sub: zmq.asyncio.Socket | None = None
        self._dealer: zmq.asyncio.Socket | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._synced = asyncio.Event()
        self._requested_at = 0.0
        self._closed = False
        # Connector changes of this loop turn, sent as one ConnectorBatch at its end (call_soon).
        self._ups: dict[tuple[str, str], ConnectorInfo] = {}
        self._downs: list[tuple[str, str]] = []
        self._flush_handle: asyncio.Handle | asyncio.TimerHandle | None = None
        self._flushed_at = -BATCH_WINDOW

    async def start(self, timeout: float = 5.0) -> None:
        """Connect, say Hello, and wait for the first snapshot (TimeoutError after ``timeout``)."""
        if self._ctx is not None:
            raise RuntimeError("BusClient.start() called twice")
        spec = self.spec
        loop = asyncio.get_running_loop()
        ctx = self._ctx = zmq.asyncio.Context()
        sub = self._sub = ctx.socket(zmq.SUB)
        dealer = self._dealer = ctx.socket(zmq.DEALER)
        for sock in (sub, dealer):
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME_SIZE)
        dealer.setsockopt(zmq.SNDHWM, MAX_QUEUED_MESSAGES)
        # Distinct per process: during a rolling reload two processes share one slot index.
        dealer.setsockopt(zmq.IDENTITY, f"worker-{spec.index}-{os.getpid()}".encode())
        try:
            async with asyncio.timeout(timeout):
                await self._subscribe(sub)
                dealer.connect(spec.registry_endpoint)
                self._spawn(self._read_updates(), "bus.updates")
                self._spawn(self._read_replies(), "bus.replies")
                self._send(Hello(index=spec.index, pid=os.getpid(), generation=spec.generation))
                self._request_snapshot(loop.time())
                await self._synced.wait()
            self._spawn(self._heartbeat(), "bus.heartbeat")
        except BaseException:
            # A worker that cannot join the bus exits; leave no sockets or tasks behind.
            await self.close()
            raise

    async def _subscribe(self, sub: zmq.asyncio.Socket) -> None:
        # The subscription goes out right after the handshake; waiting for it narrows the window
        # in which the registry could publish a delta (after our snapshot) this SUB never sees.
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        monitor = sub.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
        try:
            sub.connect(self.spec.updates_endpoint)
            while True:
                frames = await monitor.recv_multipart()
                if parse_monitor_message(frames)["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                    return
        finally:
            sub.disable_monitor()
            monitor.close(linger=0)

    def ready(self) -> None:
        """Tell the supervisor this worker serves all its listeners."""
        self._send(Ready(index=self.spec.index))

    def applied(self, generation: int) -> None:
        """Acknowledge a Reconfigure: this worker now serves ``generation``'s plans."""
        self._send(Applied(index=self.spec.index, generation=generation))

    def connector_up(self, info: ConnectorInfo) -> None:
        """Announce a connector registered in this worker (batched until the loop turn ends)."""
        self._ups[(info.tunnel_id, info.connector_id)] = info
        self._batched()

    def connector_down(self, tunnel_id: str, connector_id: str) -> None:
        """Announce that one of this worker's connectors closed (batched like connector_up)."""
        key = (tunnel_id, connector_id)
        if self._ups.pop(key, None) is None:  # else it came and went unannounced: say nothing
            self._downs.append(key)
        self._batched()

    def _batched(self) -> None:
        if len(self._ups) + len(self._downs) >= MAX_BATCH:
            self.flush()
        elif self._flush_handle is None:
            loop = asyncio.get_running_loop()
            wait = self._flushed_at + BATCH_WINDOW - loop.time()
            if wait > 0:
                self._flush_handle = loop.call_later(wait, self.flush)
            else:
                self._flush_handle = loop.call_soon(self.flush)

    def flush(self) -> None:
        """Send the connector changes queued so far as one ConnectorBatch (no-op when none)."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if not self._ups and not self._downs:
            return
        batch = ConnectorBatch(up=list(self._ups.values()), down=self._downs)
        self._ups, self._downs = {}, []
        self._flushed_at = asyncio.get_running_loop().time()
        self._send(batch)

    async def close(self) -> None:
        """Stop the tasks and close both sockets (linger 0); safe to call twice."""
        if self._closed:
            return
        if self._dealer is not None:
            self.flush()
        self._closed = True
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=CLOSE_TIMEOUT)
        self._tasks.clear()
        if self._ctx is not None:
            for sock in (self._sub, self._dealer):
                if sock is not None:
                    sock.close(linger=0)
            self._ctx.term()

    def _spawn(self, coro: Any, name: str) -> None:
        self._tasks.append(asyncio.get_running_loop().create_task(coro, name=name))

    def _send(self, msg: BusMessage) -> None:
        if self._dealer is None or self._closed:
            raise RuntimeError("BusClient is not running")
        if (self._ups or self._downs) and not isinstance(msg, ConnectorBatch):
            self.flush()  # keep the order in which this worker said things
        fut = self._dealer.send(encode(msg))
        # zmq.asyncio returns a Future here; its stubs only promise an Awaitable.
        fut.add_done_callback(self._sent)  # type: ignore[attr-defined]

    @staticmethod
    def _sent(fut: asyncio.Future[Any]) -> None:
        if not fut.cancelled() and (exc := fut.exception()) is not None:
            event(log, logging.WARNING, "bus.send_failed", error=str(exc))

    def _request_snapshot(self, now: float) -> None:
        self._requested_at = now
        self._send(SnapshotRequest(index=self.spec.index))

    def _changed(self) -> None:
        if self._on_change is not None:
            try:
                self._on_change()
            except Exception:
                log.exception("bus.on_change_failed")

    async def _read_updates(self) -> None:
        assert self._sub is not None
        loop = asyncio.get_running_loop()
        while True:
            data = await self._sub.recv()
            try:
                delta = decode_delta(data)
            except MessageError as exc:
                event(log, logging.WARNING, "bus.bad_delta", error=str(exc))
                continue
            was_synced = self.view.synced
            if not self.view.on_delta(delta):
                event(log, logging.DEBUG, "bus.gap", have=self.view.seq, got=delta.seq)
                self._synced.clear()
                self._request_snapshot(loop.time())
            elif was_synced:
                self._changed()

    async def _read_replies(self) -> None:
        assert self._dealer is not None
        loop = asyncio.get_running_loop()
        while True:
            data = await self._dealer.recv()
            try:
                snapshot = decode_reply(data)
            except MessageError as exc:
                event(log, logging.WARNING, "bus.bad_reply", error=str(exc))
                continue
            if isinstance(snapshot, Reconfigure):
                if self.on_reconfigure is not None:
                    self.on_reconfigure(snapshot)
                continue
            self.view.on_snapshot(snapshot)
            if self.view.synced:
                self._synced.set()
                self._changed()
            else:
                # The buffered deltas skip a seq the snapshot does not cover: ask again.
                self._request_snapshot(loop.time())

    async def _heartbeat(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.spec.heartbeat_interval
        due = loop.time()
        while True:
            # Fixed schedule (no drift); ticks missed while the loop was blocked are skipped.
            due += interval
            now = loop.time()
            if due < now:
                due = now + interval
            await asyncio.sleep(due - now)
            self._send(Heartbeat(index=self.spec.index, now=time.time()))
            if self.stats is not None:
                self._send(self.stats())
            now = loop.time()
            if not self.view.synced and now - self._requested_at >= MIN_RESYNC_INTERVAL:
                self._request_snapshot(now)
