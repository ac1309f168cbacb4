"""Membership state machines: the supervisor's authoritative Registry and each worker's view.

The ZeroMQ guide's Clone pattern, sans IO:

    Registry.up/down/drop_worker --Delta(seq=n)--> PUB ... SUB --> MembershipView.on_delta
    SnapshotRequest --> Registry.snapshot() --Snapshot(seq=n)--> MembershipView.on_snapshot

Every change bumps ``seq`` by exactly one, so a view that sees seq jump knows it missed something
and asks for a fresh snapshot. A view subscribes *before* it asks for the snapshot and buffers
the deltas it receives meanwhile; on the snapshot it drops the buffered ones the snapshot already
covers and replays the rest. See docs/architecture.md,
Processes (membership bus).
"""

from __future__ import annotations

from collections import deque

from .messages import ConnectorInfo, Delta, Snapshot

# Deltas kept while waiting for a snapshot. Past this the oldest are dropped: if the snapshot
# turns out older than what is left, the replay sees a gap and the view asks again.
MAX_PENDING_DELTAS = 4096

Key = tuple[str, str]


class Registry:
    """Supervisor side: the authoritative connector map, one seq per applied change."""

    def __init__(self) -> None:
        self.seq = 0
        self._connectors: dict[Key, ConnectorInfo] = {}
        # The cluster store is unreachable (set by the supervisor's cluster client).
        self.cluster_down = False

    def up(self, info: ConnectorInfo) -> Delta:
        """Add (or replace) a connector and return the Delta to publish."""
        self._connectors[(info.tunnel_id, info.connector_id)] = info
        self.seq += 1
        return Delta(seq=self.seq, up=[info], down=[], cluster_down=self.cluster_down)

    def down(self, tunnel_id: str, connector_id: str) -> Delta | None:
        """Remove a connector; None when it was not known (nothing to publish)."""
        if self._connectors.pop((tunnel_id, connector_id), None) is None:
            return None
        self.seq += 1
        return Delta(
            seq=self.seq, up=[], down=[(tunnel_id, connector_id)], cluster_down=self.cluster_down
        )

    def apply(self, up: list[ConnectorInfo], down: list[Key]) -> Delta | None:
        """A batch of changes (downs first) as ONE Delta and seq; None when nothing changed.

        Downs of unknown connectors are left out of the Delta, as ``down`` does."""
        gone = [key for key in down if self._connectors.pop(key, None) is not None]
        for info in up:
            self._connectors[(info.tunnel_id, info.connector_id)] = info
        if not gone and not up:
            return None
        self.seq += 1
        return Delta(seq=self.seq, up=list(up), down=gone, cluster_down=self.cluster_down)

    def drop_worker(self, index: int) -> Delta | None:
        """Remove every connector owned by worker ``index`` as one Delta; None when it had none."""
        gone = [
            key for key, info in self._connectors.items() if info.worker == index and not info.node
        ]
        if not gone:
            return None
        for key in gone:
            del self._connectors[key]
        self.seq += 1
        return Delta(seq=self.seq, up=[], down=gone, cluster_down=self.cluster_down)

    def set_cluster_down(self, down: bool) -> Delta | None:
        """Flip the "cluster store unreachable" flag; the Delta to publish, None if unchanged."""
        if down == self.cluster_down:
            return None
        self.cluster_down = down
        self.seq += 1
        return Delta(seq=self.seq, up=[], down=[], cluster_down=down)

    def remote(self) -> list[ConnectorInfo]:
        """Every connector held by another cluster node (``node`` set)."""
        return [c for c in self._connectors.values() if c.node]

    def snapshot(self) -> Snapshot:
        """Everything, as of the current seq."""
        return Snapshot(
            seq=self.seq,
            connectors=list(self._connectors.values()),
            cluster_down=self.cluster_down,
        )

    def connectors(self) -> list[ConnectorInfo]:
        """Every known connector, in registration order."""
        return list(self._connectors.values())


class MembershipView:
    """Worker side: a replica of the registry fed by one Snapshot and then ordered Deltas."""

    def __init__(self) -> None:
        self.synced = False
        self.seq = -1
        # The supervisor cannot reach the cluster store: a miss cannot be forwarded (say why).
        self.cluster_down = False
        self._tunnels: dict[str, dict[str, ConnectorInfo]] = {}
        self._pending: deque[Delta] = deque(maxlen=MAX_PENDING_DELTAS)

    def on_delta(self, d: Delta) -> bool:
        """Apply (or buffer) one Delta; False means a gap was found and a snapshot is needed."""
        if not self.synced:
            self._pending.append(d)
            return True
        if d.seq <= self.seq:
            return True  # duplicate or already covered by the snapshot
        if d.seq != self.seq + 1:
            # Keep it: the snapshot we are about to ask for may be older than this delta.
            self.synced = False
            self._pending.clear()
            self._pending.append(d)
            return False
        self._apply(d)
        return True

    def on_snapshot(self, s: Snapshot) -> None:
        """Replace the state with ``s`` and replay buffered deltas newer than it.

        If the buffered deltas do not continue ``s.seq`` without a hole, ``synced`` stays False
        (the caller asks for another snapshot) and the deltas past the hole stay buffered.
        """
        self._tunnels = {}
        for info in s.connectors:
            self._tunnels.setdefault(info.tunnel_id, {})[info.connector_id] = info
        self.seq = s.seq
        self.cluster_down = s.cluster_down
        self.synced = True
        pending = sorted(self._pending, key=lambda d: d.seq)
        self._pending.clear()
        for i, d in enumerate(pending):
            if d.seq <= self.seq:
                continue
            if d.seq != self.seq + 1:
                self.synced = False
                self._pending.extend(pending[i:])
                return
            self._apply(d)

    def lookup(self, tunnel_id: str, network: str | None = None) -> list[ConnectorInfo]:
        """This node's connectors of one tunnel, optionally only one network's (tcp/udp)."""
        conns = self._tunnels.get(tunnel_id)
        if not conns:
            return []
        return [
            c for c in conns.values() if not c.node and (network is None or c.network == network)
        ]

    def remote(self, tunnel_id: str, network: str | None = None) -> list[ConnectorInfo]:
        """Connectors of one tunnel held by other cluster nodes (``node`` set), by network."""
        conns = self._tunnels.get(tunnel_id)
        if not conns:
            return []
        return [c for c in conns.values() if c.node and (network is None or c.network == network)]

    def all(self) -> list[ConnectorInfo]:
        """Every connector in the view, this node's and other nodes'."""
        return [c for conns in self._tunnels.values() for c in conns.values()]

    def _apply(self, d: Delta) -> None:
        # Downs first, so a delta that re-announces a connector leaves it present.
        for tunnel_id, connector_id in d.down:
            conns = self._tunnels.get(tunnel_id)
            if conns is not None:
                conns.pop(connector_id, None)
                if not conns:
                    del self._tunnels[tunnel_id]
        for info in d.up:
            self._tunnels.setdefault(info.tunnel_id, {})[info.connector_id] = info
        self.seq = d.seq
        self.cluster_down = d.cluster_down
