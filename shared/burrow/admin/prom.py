"""Prometheus text for an AdminSnapshot: a custom ``prometheus_client`` Collector.

Why a Collector and not Counter objects: the numbers are already summed by the host (workers
count in plain ints and report once per heartbeat), so rendering reads one snapshot per scrape;
no metric object is touched on the data path. The metric names are documented in docs/admin.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from .api import tunnel_ref
from .model import AdminSnapshot

# Stats event name -> (metric, label values) for the per-service counters.
ENTRY_OUTCOMES = {
    "entry_routed": "routed",
    "entry_502": "502",
    "entry_503": "503",
    "entry_closed": "closed",
    "entry_sniff_timeout": "sniff_timeout",
}
VISITOR_OUTCOMES = {"visitor_routed": "routed", "visitor_503": "503"}
# Cluster forwards (burrow.server.forward): sent on, failed to send, arrived, refused here.
FORWARD_OUTCOMES = {
    "forward_out": "out",
    "forward_failed": "failed",
    "forward_in": "in",
    "forward_refused": "refused",
}


class SnapshotCollector(Collector):
    """Yields every burrow_* metric from the host's current snapshot."""

    def __init__(self, snapshot: Callable[[], AdminSnapshot]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snap = self._snapshot()
        up = GaugeMetricFamily("burrow_tunnels_up", "Tunnels with at least one live connector")
        tunnels = {c.tunnel_id for _, c in snap.connectors}
        up.add_metric([], len(tunnels))
        yield up
        conns = GaugeMetricFamily(
            "burrow_connectors", "Live connectors", labels=["tunnel", "role", "dialect", "network"]
        )
        opened = GaugeMetricFamily("burrow_streams_open", "Open streams", labels=["tunnel"])
        by_conn: dict[tuple[str, str, str, str], int] = {}
        streams: dict[str, int] = {}
        for _, c in snap.connectors:
            ref = tunnel_ref(c.tunnel_id)
            key = (ref, c.role, c.dialect, c.network)
            by_conn[key] = by_conn.get(key, 0) + 1
            streams[ref] = streams.get(ref, 0) + c.streams_open
        for key, n in sorted(by_conn.items()):
            conns.add_metric(list(key), n)
        for ref, n in sorted(streams.items()):
            opened.add_metric([ref], n)
        yield conns
        yield opened
        labels = ["service", "role", "tunnel"]
        b_in = CounterMetricFamily(
            "burrow_tunnel_received_bytes", "Bytes read from tunnel connections", labels=labels
        )
        b_out = CounterMetricFamily(
            "burrow_tunnel_sent_bytes", "Bytes written to tunnel connections", labels=labels
        )
        total = CounterMetricFamily("burrow_streams", "Streams opened", labels=labels)
        for (service, role, tid), (i, o, s) in sorted(snap.traffic.items()):
            values = [service, role, tunnel_ref(tid)]
            b_in.add_metric(values, i)
            b_out.add_metric(values, o)
            total.add_metric(values, s)
        yield b_in
        yield b_out
        yield total
        yield from self._events(snap)
        restarts = CounterMetricFamily("burrow_worker_restarts", "Workers that exited unasked")
        restarts.add_metric([], snap.restarts)
        yield restarts
        reloads = CounterMetricFamily("burrow_reloads", "Config reloads", labels=["result"])
        reloads.add_metric(["ok"], snap.reloads_ok)
        reloads.add_metric(["failed"], snap.reloads_failed)
        yield reloads
        workers = GaugeMetricFamily("burrow_workers", "Worker processes", labels=["state"])
        ready = sum(1 for w in snap.workers if w.ready)
        workers.add_metric(["ready"], ready)
        workers.add_metric(["starting"], len(snap.workers) - ready)
        yield workers
        yield from self._cluster(snap)

    @staticmethod
    def _cluster(snap: AdminSnapshot) -> Iterator[Metric]:
        cluster = snap.extra.get("cluster")
        if cluster is None:
            return
        up = GaugeMetricFamily("burrow_cluster_redis_up", "1 while the cluster's Redis answers")
        up.add_metric([], 1 if cluster.get("redis") == "up" else 0)
        yield up
        outages = CounterMetricFamily(
            "burrow_cluster_redis_outages", "Times the cluster's Redis became unreachable"
        )
        outages.add_metric([], cluster.get("outages", 0))
        yield outages
        nodes = GaugeMetricFamily("burrow_cluster_nodes", "Live Burrow nodes seen, this one too")
        nodes.add_metric([], sum(1 for n in cluster.get("nodes", []) if n.get("alive")))
        yield nodes
        remote = GaugeMetricFamily(
            "burrow_cluster_remote_connectors", "Other nodes' connectors known", labels=["kind"]
        )
        kinds: dict[str, int] = {"burrow": 0, "gost": 0}
        for rows in cluster.get("tunnels", {}).values():
            for row in rows:
                if row.get("kind") in kinds:
                    kinds[row["kind"]] += 1
        for kind, n in sorted(kinds.items()):
            remote.add_metric([kind], n)
        yield remote

    @staticmethod
    def _events(snap: AdminSnapshot) -> Iterator[Metric]:
        entry = CounterMetricFamily(
            "burrow_entry_requests", "Entry point connections by outcome",
            labels=["service", "outcome"],
        )  # fmt: skip
        visitor = CounterMetricFamily(
            "burrow_visitor_requests", "Relay CONNECTs by outcome", labels=["service", "outcome"]
        )
        handoffs = CounterMetricFamily(
            "burrow_handoffs", "Connections handed to another worker", labels=["service", "way"]
        )
        auth = CounterMetricFamily("burrow_auth_failures", "Failed logins", labels=["service"])
        forwards = CounterMetricFamily(
            "burrow_forwards", "Cluster forwards by outcome", labels=["service", "outcome"]
        )
        for (service, name), n in sorted(snap.events.items()):
            if name in ENTRY_OUTCOMES:
                entry.add_metric([service, ENTRY_OUTCOMES[name]], n)
            elif name in VISITOR_OUTCOMES:
                visitor.add_metric([service, VISITOR_OUTCOMES[name]], n)
            elif name in ("handoff_out", "handoff_in"):
                handoffs.add_metric([service, name[len("handoff_") :]], n)
            elif name == "auth_failed":
                auth.add_metric([service], n)
            elif name in FORWARD_OUTCOMES:
                forwards.add_metric([service, FORWARD_OUTCOMES[name]], n)
        yield entry
        yield visitor
        yield handoffs
        yield auth
        yield forwards


def make_renderer(snapshot: Callable[[], AdminSnapshot]) -> Callable[[], tuple[str, bytes]]:
    """A function giving (content type, Prometheus text) for the current snapshot."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snapshot))

    def render() -> tuple[str, bytes]:
        return CONTENT_TYPE_LATEST, generate_latest(registry)

    return render
