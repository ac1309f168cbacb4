"""WorkerStats: this worker's counters, plain ints bumped on the data path, shipped as ``Stats``.

The data path never calls into this module per byte: a MuxConnection adds the length of each
read or write batch to its own two ints (burrow.net.mux), and this module only reads them when a
snapshot is taken (once per heartbeat, only while the admin endpoint is on). Events that happen
once per connection (an entry point's outcome, a handoff, a failed login) are one dict add.

Totals survive the connector: when one closes its bytes are folded into its tunnel's totals, so
every count here is monotonic over the process's life (the supervisor sums over processes).
"""

from __future__ import annotations

from dataclasses import dataclass

from burrow.ipc.messages import ConnectorStats, Stats, TunnelTraffic
from burrow.net.mux import MuxConnection

# Distinct (service, role, tunnel) totals kept; past this, new tunnels count under "other"
# (a relay port open to anyone must not let random tunnel IDs grow the metrics without bound).
MAX_TUNNELS = 10_000
OTHER = "other"


@dataclass(slots=True, eq=False)
class Tracked:
    """One live connector: its mux and how to label it."""

    service: str
    role: str  # "server" (held by a relay server) or "client" (a tunnel client's session)
    tunnel_id: str
    connector_id: str
    network: str
    dialect: str
    peer: str
    since: float
    mux: MuxConnection


class WorkerStats:
    """Counters of one worker process; see the module docstring for what is counted where."""

    def __init__(self) -> None:
        self.live: dict[int, Tracked] = {}
        # (service, role, tunnel) -> [bytes_in, bytes_out, streams_total] of closed connectors
        self.closed: dict[tuple[str, str, str], list[int]] = {}
        self.events: dict[str, int] = {}

    def count(self, service: str, name: str, n: int = 1) -> None:
        """One event of ``service`` (entry outcome, handoff, auth failure: docs/admin.md)."""
        key = f"{service}|{name}"
        self.events[key] = self.events.get(key, 0) + n

    def track(self, t: Tracked) -> None:
        """Start reporting a connector."""
        self.live[id(t.mux)] = t

    def untrack(self, mux: MuxConnection) -> None:
        """A connector closed: keep its bytes in its tunnel's totals."""
        t = self.live.pop(id(mux), None)
        if t is None:
            return
        key = self._key(t)
        acc = self.closed.setdefault(key, [0, 0, 0])
        acc[0] += mux.bytes_in
        acc[1] += mux.bytes_out
        acc[2] += mux.streams_total

    def _key(self, t: Tracked) -> tuple[str, str, str]:
        key = (t.service, t.role, t.tunnel_id)
        if key not in self.closed and len(self.closed) >= MAX_TUNNELS:
            key = (t.service, t.role, OTHER)
        return key

    def snapshot(self, index: int, pid: int) -> Stats:
        """Everything counted so far (live connectors included in their tunnel's totals)."""
        totals = {k: list(v) for k, v in self.closed.items()}
        connectors = []
        for t in self.live.values():
            m = t.mux
            streams = len(m.streams)
            connectors.append(
                ConnectorStats(
                    t.service,
                    t.role,
                    t.tunnel_id,
                    t.connector_id,
                    t.network,
                    t.dialect,
                    t.peer,
                    t.since,
                    m.bytes_in,
                    m.bytes_out,
                    streams,
                    m.streams_total,
                )
            )
            key = (t.service, t.role, t.tunnel_id)
            acc = totals.setdefault(key if key in totals else self._key(t), [0, 0, 0])
            acc[0] += m.bytes_in
            acc[1] += m.bytes_out
            acc[2] += m.streams_total
        tunnels = [TunnelTraffic(s, r, tid, *v) for (s, r, tid), v in totals.items()]
        return Stats(index, pid, connectors, tunnels, dict(self.events))


# One per worker process: the data path reaches it without threading it through every object.
STATS = WorkerStats()
