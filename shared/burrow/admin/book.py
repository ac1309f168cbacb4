"""StatsBook: sums of worker processes' counters, the admin endpoint's AdminState.

The supervisor feeds it from the bus; a process without a supervisor can feed it its own
``burrow.worker.stats`` snapshots (``report(pid, STATS.snapshot(...))`` on a timer).

Each worker process reports cumulative counts (burrow.worker.stats) with its heartbeat; the book
keeps the last report per process. When a process exits its last report moves into the retired
totals, so every sum is monotonic across restarts (only what a killed worker counted after its
last report, at most one heartbeat interval, is lost). Written by the supervisor's loop, read by
the admin server's thread: one lock, held for a dict update or a snapshot copy.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from burrow.admin.events import EventRing
from burrow.admin.model import AdminSnapshot, TrafficKey, WorkerView
from burrow.ipc.messages import ConnectorStats, Stats

# Worker counters whose growth is worth a line in /api/events (the dashboard's recent errors).
WATCHED_EVENTS = frozenset(
    ["entry_502", "entry_503", "entry_sniff_timeout", "visitor_503", "auth_failed"]
)


@dataclass(slots=True)
class _Proc:
    index: int
    pid: int
    generation: int
    started: float
    ready: bool = False
    last: Stats | None = None
    reported: float | None = None


class StatsBook:
    """Aggregated worker counters plus the supervisor's own (restarts, reloads)."""

    def __init__(
        self,
        *,
        clients: Iterable[str] = (),
        config: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._procs: dict[int, _Proc] = {}  # by pid
        self._traffic: dict[TrafficKey, list[int]] = {}
        self._events: dict[tuple[str, str], int] = {}
        self._clients = frozenset(clients)  # tunnel-client services: ready needs them registered
        self._config = config
        self.started = time.time()
        self.announced = False  # the supervisor printed READY
        self.restarts = 0
        self.reloads_ok = 0
        # The cluster's state for /api/cluster and the burrow_cluster_* metrics (None: no
        # cluster); a callable safe to call from the admin thread.
        self.cluster: Callable[[], dict[str, Any] | None] | None = None
        self.reloads_failed = 0
        self.recent = EventRing()  # /api/events: warnings, errors, what workers count as failed

    # -- written by the supervisor's loop ---------------------------------------------------
    def spawned(self, index: int, pid: int, generation: int) -> None:
        """A worker process started."""
        with self._lock:
            self._procs[pid] = _Proc(index, pid, generation, time.time())

    def ready(self, pid: int) -> None:
        """A worker process serves all its listeners."""
        with self._lock:
            proc = self._procs.get(pid)
            if proc is not None:
                proc.ready = True

    def report(self, pid: int, stats: Stats) -> None:
        """A worker's latest counters."""
        with self._lock:
            proc = self._procs.get(pid)
            if proc is None:
                return
            before = proc.last.events if proc.last is not None else {}
            proc.last = stats
            proc.reported = time.time()
        for key, n in stats.events.items():
            service, _, name = key.partition("|")
            grew = n - before.get(key, 0)
            if name in WATCHED_EVENTS and grew > 0:
                fields = {"worker": proc.index, "service": service, "count": grew}
                self.recent.add("warning", name, fields, source=f"worker-{proc.index}")

    def exited(self, pid: int) -> None:
        """A worker process is gone: keep its last counts in the retired totals."""
        with self._lock:
            proc = self._procs.pop(pid, None)
            if proc is None or proc.last is None:
                return
            _add(self._traffic, self._events, proc.last)

    def set_clients(self, clients: Iterable[str]) -> None:
        """The tunnel-client services of the running config (a reload may change them)."""
        with self._lock:
            self._clients = frozenset(clients)

    # -- AdminState, read from the admin thread ----------------------------------------------
    def snapshot(self) -> AdminSnapshot:
        """The sums as of the workers' last reports."""
        with self._lock:
            traffic = {k: list(v) for k, v in self._traffic.items()}
            events = dict(self._events)
            procs = sorted(self._procs.values(), key=lambda p: (p.index, p.started))
            connectors: list[tuple[int, ConnectorStats]] = []
            for p in procs:
                if p.last is not None:
                    _add(traffic, events, p.last)
                    connectors.extend((p.index, c) for c in p.last.connectors)
            workers = [
                WorkerView(p.index, p.pid, p.generation, p.ready, p.started, p.reported)
                for p in procs
            ]
            clients = self._clients
            announced = self.announced
            counts = (self.restarts, self.reloads_ok, self.reloads_failed)
        up = {c.service for _, c in connectors if c.role == "client"}
        missing = sorted(clients - up)
        why = "" if announced else "not listening yet"
        if not why and missing:
            why = "tunnel not registered: " + ",".join(missing)
        return AdminSnapshot(
            started=self.started,
            ready=not why,
            not_ready=why,
            connectors=connectors,
            traffic=traffic,
            events=events,
            workers=workers,
            restarts=counts[0],
            reloads_ok=counts[1],
            reloads_failed=counts[2],
            extra=self._extra(),
        )

    def _extra(self) -> dict[str, Any]:
        cluster = self.cluster() if self.cluster is not None else None
        return {"cluster": cluster} if cluster is not None else {}

    def config(self) -> dict[str, Any]:
        """The running config, redacted (by the callable the host gave)."""
        return self._config() if self._config is not None else {}


def _add(
    traffic: dict[TrafficKey, list[int]], events: dict[tuple[str, str], int], stats: Stats
) -> None:
    for t in stats.tunnels:
        acc = traffic.setdefault((t.service, t.role, t.tunnel_id), [0, 0, 0])
        acc[0] += t.bytes_in
        acc[1] += t.bytes_out
        acc[2] += t.streams_total
    for key, n in stats.events.items():
        service, _, name = key.partition("|")
        events[(service, name)] = events.get((service, name), 0) + n
