"""Registry broker: the supervisor end of the membership bus (ZeroMQ Guide "Clone" pattern).

ROUTER receives WorkerMessages and answers SnapshotRequest with a Snapshot; PUB publishes every
applied change as a sequenced Delta. The state machine itself is ``burrow.ipc.membership``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import zmq

from burrow.common.logfmt import event
from burrow.ipc.membership import Registry
from burrow.ipc.messages import (
    ConnectorBatch,
    ConnectorDown,
    ConnectorUp,
    Delta,
    Reconfigure,
    SnapshotRequest,
    WorkerMessage,
    decode_worker,
    encode,
)

log = logging.getLogger("burrow.supervisor.registry")

# Requests drained per readable event, so one chatty worker cannot starve signals and pidfds.
MAX_BATCH = 256
# Envelope frames a DEALER request may carry before the payload (identity + optional delimiter).
MAX_FRAMES = 3

OnMessage = Callable[[bytes, WorkerMessage], None]


class RegistryBroker:
    """ROUTER + PUB around the authoritative :class:`Registry`."""

    def __init__(
        self, registry_endpoint: str, updates_endpoint: str, on_message: OnMessage
    ) -> None:
        self.registry = Registry()
        self._on_message = on_message
        self._ctx: zmq.Context[Any] = zmq.Context()
        self.router: zmq.Socket[Any] = self._ctx.socket(zmq.ROUTER)
        self.pub: zmq.Socket[Any] = self._ctx.socket(zmq.PUB)
        for sock in (self.router, self.pub):
            sock.setsockopt(zmq.LINGER, 0)
        self.router.bind(registry_endpoint)
        self.pub.bind(updates_endpoint)
        self.registry_endpoint = registry_endpoint
        self.updates_endpoint = updates_endpoint
        # Told every published Delta (the cluster client writes this node's part to Redis).
        self.on_publish: Callable[[Delta], None] | None = None
        # Connectors by announcing process: during a rolling reload two processes share a slot
        # index, and the old one's exit must not drop the new one's connectors.
        self._owned: dict[bytes, set[tuple[str, str]]] = {}

    def handle_readable(self) -> None:
        """Drain pending requests (bounded batch; zmq_poll reports the rest next round)."""
        for _ in range(MAX_BATCH):
            try:
                frames = self.router.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if not 2 <= len(frames) <= MAX_FRAMES:
                event(log, logging.WARNING, "registry.bad_envelope", frames=len(frames))
                continue
            identity = frames[0]
            try:
                msg = decode_worker(frames[-1])
            except Exception as exc:  # noqa: BLE001 - a bad message is the worker's bug, not ours
                event(log, logging.WARNING, "registry.bad_message", error=str(exc))
                continue
            self._apply(frames[:-1], identity, msg)
            self._on_message(identity, msg)

    def _apply(self, envelope: list[bytes], identity: bytes, msg: WorkerMessage) -> None:
        if isinstance(msg, ConnectorBatch):
            owned = self._owned.setdefault(identity, set())
            owned.difference_update(msg.down)
            owned.update((i.tunnel_id, i.connector_id) for i in msg.up)
            self.publish(self.registry.apply(msg.up, msg.down))
        elif isinstance(msg, ConnectorUp):
            self._owned.setdefault(identity, set()).add((msg.info.tunnel_id, msg.info.connector_id))
            self.publish(self.registry.up(msg.info))
        elif isinstance(msg, ConnectorDown):
            self._owned.get(identity, set()).discard((msg.tunnel_id, msg.connector_id))
            self.publish(self.registry.down(msg.tunnel_id, msg.connector_id))
        elif isinstance(msg, SnapshotRequest):
            self.router.send_multipart([*envelope, encode(self.registry.snapshot())])

    def publish(self, delta: Delta | None) -> None:
        """Send one Delta to every subscriber (nothing when the change was a no-op)."""
        if delta is not None:
            self.pub.send(encode(delta))
            if self.on_publish is not None:
                self.on_publish(delta)

    def send_to(self, identity: bytes, msg: Reconfigure) -> None:
        """Send one message to one worker's DEALER."""
        self.router.send_multipart([identity, encode(msg)])

    def worker_gone(self, identity: bytes | None, index: int, slot_alive: bool) -> None:
        """A worker process exited: publish the removal of everything it announced."""
        owned = self._owned.pop(identity, set()) if identity is not None else set()
        if not slot_alive:
            self.publish(self.registry.drop_worker(index))
            return
        for tunnel_id, connector_id in sorted(owned):
            self.publish(self.registry.down(tunnel_id, connector_id))

    def close(self) -> None:
        """Close both sockets (linger 0) and terminate the context."""
        self.router.close(linger=0)
        self.pub.close(linger=0)
        self._ctx.term()
