"""ClusterBridge: the poll loop's end of the cluster client (queue + eventfd, one reader).

The client thread posts RemoteSync / StoreState; the bridge applies them to the Registry on
the poll loop's thread and publishes the Deltas, so every worker's view gets other nodes'
connectors (and ``cluster_down``) through the existing bus. It also hands every published
Delta to the client, which writes this node's connectors to Redis.
"""

from __future__ import annotations

import logging
import os
import queue

from burrow.common.logfmt import event
from burrow.ipc.messages import ConnectorInfo, Delta

from .cluster_client import ClusterClient, RemoteSync, StoreState
from .loop import Loop
from .registry import RegistryBroker

log = logging.getLogger("burrow.cluster")

# Posts applied per wakeup, so a flood of notices cannot starve signals and pidfds.
MAX_BATCH = 256


class ClusterBridge:
    """Applies the client's posts to ``broker``'s Registry (see module doc)."""

    def __init__(self, broker: RegistryBroker, loop: Loop) -> None:
        self._broker = broker
        self._loop = loop
        self._queue: queue.SimpleQueue[RemoteSync | StoreState] = queue.SimpleQueue()
        self._fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.client: ClusterClient | None = None
        # Every connector (this node's and others'), swapped whole after each published Delta,
        # so the admin thread reads a consistent tuple without a lock.
        self.connectors: tuple[ConnectorInfo, ...] = ()
        self._refresh_due = False
        loop.add_reader(self._fd, self._drain)

    def post(self, item: RemoteSync | StoreState) -> None:
        """Any thread: queue ``item`` and wake the poll loop."""
        self._queue.put(item)
        os.eventfd_write(self._fd, 1)

    def published(self, delta: Delta) -> None:
        """The broker published ``delta``: the client writes this node's part to Redis."""
        if not self._refresh_due:
            # One copy per poll-loop turn, however many Deltas it published.
            self._refresh_due = True
            self._loop.call_later(0, self._refresh)
        if self.client is not None:
            self.client.local_delta(delta)

    def _refresh(self) -> None:
        self._refresh_due = False
        self.connectors = tuple(self._broker.registry.connectors())

    def _drain(self) -> None:
        try:
            os.eventfd_read(self._fd)
        except BlockingIOError:
            pass
        for _ in range(MAX_BATCH):
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            self.apply(item)
        os.eventfd_write(self._fd, 1)  # more left: come back next round

    def apply(self, item: RemoteSync | StoreState) -> None:
        """Apply one post to the Registry and publish the result."""
        registry = self._broker.registry
        if isinstance(item, StoreState):
            if item.down:
                gone = [(c.tunnel_id, c.connector_id) for c in registry.remote()]
                self._broker.publish(registry.apply([], gone))
                if gone:
                    event(log, logging.WARNING, "cluster.remote_dropped", connectors=len(gone),
                          reason="Redis unreachable")  # fmt: skip
            self._broker.publish(registry.set_cluster_down(item.down))
            return
        have: dict[tuple[str, str], ConnectorInfo] = {
            (c.tunnel_id, c.connector_id): c
            for c in registry.remote()
            if item.full or c.tunnel_id in item.tunnels
        }
        want = {(c.tunnel_id, c.connector_id): c for conns in item.tunnels.values() for c in conns}
        down = [key for key in have if key not in want]
        up = [c for key, c in want.items() if have.get(key) != c]
        self._broker.publish(registry.apply(up, down))

    def close(self) -> None:
        """Stop the client (which deregisters this node) and close the eventfd."""
        if self.client is not None:
            self.client.close()
        self._loop.remove_reader(self._fd)
        os.close(self._fd)
