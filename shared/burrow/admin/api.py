"""The admin endpoint's requests and answers, as data: path in, (status, type, body) out.

JSON field names here are the API (docs/admin.md); a dashboard polls them, so they only grow.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Callable
from typing import Any

from burrow.common.ids import TunnelId
from burrow.config.cluster import redis_label

from .events import EventRing
from .model import AdminSnapshot, AdminState

JSON = "application/json"
REDACTED = "<redacted>"
# Keys whose values are secrets wherever they appear in the config (passwords, tokens).
SECRET_KEYS = frozenset(["password", "admin_token", "token", "secret", "passphrase", "sd_token"])

Answer = tuple[int, str, bytes]
# Static pages (the dashboard): path -> answer, or None when the path is not one of them.
Pages = Callable[[str], Answer | None]


def tunnel_ref(tunnel_id: str) -> str:
    """The short form logs use for a tunnel ID: its first 8 hex digits."""
    try:
        return TunnelId.parse(tunnel_id).uuid.hex()[:8]
    except ValueError:
        return tunnel_id[:8]


def redact(value: Any) -> Any:
    """A copy of plain data with every secret value replaced by ``<redacted>``."""
    if isinstance(value, dict):
        return {
            k: (
                REDACTED
                if str(k).lower() in SECRET_KEYS and v
                # [burrow.cluster] redis: a URL that may carry a password
                else redis_label(v)
                if k == "redis" and isinstance(v, str)
                else redact(v)
            )
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


def _connector(worker: int, c: Any) -> dict[str, Any]:
    return {
        "connector_id": c.connector_id,
        "worker": worker,
        "service": c.service,
        "role": c.role,
        "network": c.network,
        "dialect": c.dialect,
        "peer": c.peer,
        "since": c.since,
        "streams_open": c.streams_open,
        "streams_total": c.streams_total,
        "bytes_in": c.bytes_in,
        "bytes_out": c.bytes_out,
    }


def tunnels(snap: AdminSnapshot) -> dict[str, Any]:
    """``/api/tunnels``: every tunnel with a live connector or traffic, and its connectors."""
    out: dict[str, dict[str, Any]] = {}

    def row(tid: str) -> dict[str, Any]:
        return out.setdefault(
            tid,
            {"tunnel_id": tid, "tunnel": tunnel_ref(tid), "up": False, "connectors": [],
             "streams_open": 0, "streams_total": 0, "bytes_in": 0, "bytes_out": 0},
        )  # fmt: skip

    for worker, c in snap.connectors:
        r = row(c.tunnel_id)
        r["up"] = True
        r["connectors"].append(_connector(worker, c))
        r["streams_open"] += c.streams_open
    for (_service, _role, tid), (b_in, b_out, streams) in snap.traffic.items():
        r = row(tid)
        r["bytes_in"] += b_in
        r["bytes_out"] += b_out
        r["streams_total"] += streams
    return {"tunnels": sorted(out.values(), key=lambda r: (not r["up"], r["tunnel_id"]))}


def workers(snap: AdminSnapshot) -> dict[str, Any]:
    """``/api/workers``: every worker process, with its share of connectors."""
    per: dict[int, list[int]] = {}
    for worker, c in snap.connectors:
        acc = per.setdefault(worker, [0, 0, 0, 0])
        acc[0] += 1
        acc[1] += c.streams_open
        acc[2] += c.bytes_in
        acc[3] += c.bytes_out
    rows = []
    for w in snap.workers:
        conns, streams, b_in, b_out = per.get(w.index, [0, 0, 0, 0])
        rows.append(
            {"index": w.index, "pid": w.pid, "generation": w.generation, "ready": w.ready,
             "started": w.started, "reported": w.reported, "connectors": conns,
             "streams_open": streams, "bytes_in": b_in, "bytes_out": b_out}
        )  # fmt: skip
    return {"workers": rows, "restarts": snap.restarts}


def summary(snap: AdminSnapshot) -> dict[str, Any]:
    """``/api/summary``: the totals a status line or a dashboard header shows."""
    events: dict[str, int] = {}
    for (_service, name), n in snap.events.items():
        events[name] = events.get(name, 0) + n
    services: dict[str, dict[str, int]] = {}
    for (service, _role, _tid), (b_in, b_out, streams) in snap.traffic.items():
        acc = services.setdefault(service, {"bytes_in": 0, "bytes_out": 0, "streams_total": 0})
        acc["bytes_in"] += b_in
        acc["bytes_out"] += b_out
        acc["streams_total"] += streams
    return {
        "time": time.time(),
        "uptime_seconds": round(time.time() - snap.started, 3),
        "ready": snap.ready,
        "not_ready": snap.not_ready,
        "workers": len(snap.workers),
        "workers_ready": sum(1 for w in snap.workers if w.ready),
        "tunnels_up": len({c.tunnel_id for _, c in snap.connectors}),
        "connectors": len(snap.connectors),
        "streams_open": sum(c.streams_open for _, c in snap.connectors),
        "bytes_in": sum(v[0] for v in snap.traffic.values()),
        "bytes_out": sum(v[1] for v in snap.traffic.values()),
        "services": services,
        "events": events,
        "restarts": snap.restarts,
        "reloads": {"ok": snap.reloads_ok, "failed": snap.reloads_failed},
    }


def _since(query: str) -> int:
    """``since=N`` of a query string; 0 when absent or not a number."""
    for part in query.split("&"):
        key, _, value = part.partition("=")
        if key == "since" and value.isdigit():
            return min(int(value), 1 << 62)
    return 0


def _json(status: int, data: Any) -> Answer:
    return status, JSON, json.dumps(data, separators=(",", ":")).encode()


class AdminApi:
    """Routes one request to its answer; ``metrics`` renders the Prometheus text."""

    def __init__(
        self,
        state: AdminState,
        metrics: Callable[[], tuple[str, bytes]],
        *,
        token: str | None = None,
        metrics_path: str = "/metrics",
        events: EventRing | None = None,
        pages: Pages | None = None,
    ) -> None:
        self.state = state
        self._metrics = metrics
        self._events = events
        self._pages = pages
        self._token = token.encode() if token else None
        self.metrics_path = metrics_path

    def authorized(self, header: str | None) -> bool:
        """True when no token is set or ``Authorization`` carries it (constant-time compare)."""
        if self._token is None:
            return True
        scheme, _, given = (header or "").strip().partition(" ")
        # The scheme is case-insensitive (RFC 9110); the token is compared in constant time.
        ok = hmac.compare_digest(given.strip().encode(errors="surrogateescape"), self._token)
        return ok and scheme.lower() == "bearer"

    def answer(self, method: str, path: str, authorization: str | None) -> Answer:
        """The whole response to ``method path``; never raises for a bad request."""
        path, _, query = path.partition("?")
        if method not in ("GET", "HEAD"):
            return _json(405, {"error": "only GET"})
        if path == "/healthz":
            return _json(200, {"status": "ok"})  # liveness: no token, no secrets
        if path == "/readyz":  # for probes too, like /healthz: says ready or not, and why
            snap = self.state.snapshot()
            return _json(200 if snap.ready else 503, {"ready": snap.ready, "why": snap.not_ready})
        if self._pages is not None:
            # The dashboard's files hold no data (it asks for the token, then calls the API).
            page = self._pages(path)
            if page is not None:
                return page
        if not self.authorized(authorization):
            return _json(401, {"error": "missing or wrong bearer token"})
        if path == self.metrics_path:
            ctype, body = self._metrics()
            return 200, ctype, body
        views: dict[str, Callable[[AdminSnapshot], dict[str, Any]]] = {
            "/api/summary": summary,
            "/api/tunnels": tunnels,
            "/api/workers": workers,
        }
        view = views.get(path)
        if view is not None:
            return _json(200, view(self.state.snapshot()))
        if path == "/api/cluster":
            cluster = self.state.snapshot().extra.get("cluster")
            if cluster is None:
                return _json(404, {"error": "this node is not in a cluster ([burrow.cluster])"})
            return _json(200, cluster)
        if path == "/api/config":
            return _json(200, self.state.config())
        if path == "/api/events":
            ring = self._events
            empty = {"events": [], "last": 0, "dropped": 0}
            return _json(200, ring.view(_since(query)) if ring is not None else empty)
        return _json(404, {"error": f"no such path; try {self.metrics_path} or /api/summary"})
