"""gost's SD HTTP plugin API, sans IO: a request (method, query, body) in, one call out.

What a gost 3.x server with ``sds: [{plugin: {type: http, addr: URL, token: T}}]`` sends
(go-gost/x ``sd/plugin/http.go``): one URL, JSON ``{"id","name","node","network","address"}``,
``Authorization: Bearer <token>``; POST registers, PUT renews, DELETE deregisters, ``GET
?name=<tunnel ID>`` answers ``{"services": [...]}``; gost counts only HTTP 200. The store side
(Redis, the same layout Burrow nodes write) is the caller's; docs/cluster.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import parse_qs

from .store import MAX_RECORD, NETWORKS

MAX_BODY = 64 * 1024
# IDs and names as gost sends them (UUIDs, node names): bounded, printable, no spaces.
MAX_FIELD = 256


@dataclass(frozen=True, slots=True)
class SdCall:
    """One SD operation: "register", "renew", "deregister" or "get"."""

    op: str
    name: str
    id: str = ""
    node: str = ""
    network: str = "tcp"
    address: str = ""


@dataclass(frozen=True, slots=True)
class SdError:
    """A request refused before touching the store: HTTP status and why (safe to echo)."""

    status: int
    error: str


OPS = {"POST": "register", "PUT": "renew", "DELETE": "deregister"}


def _field(data: dict[str, object], key: str) -> str | None:
    value = data.get(key, "")
    if not isinstance(value, str) or len(value) > MAX_FIELD:
        return None
    if any(ch.isspace() or not ch.isprintable() for ch in value):
        return None
    return value


def parse_request(method: str, query: str, body: bytes) -> SdCall | SdError:
    """The call a request asks for, or why it is refused (400/405)."""
    if method == "GET":
        names = parse_qs(query).get("name", [])
        name = names[0] if names else ""
        if not name or len(name) > MAX_FIELD:
            return SdError(400, "GET needs ?name=<tunnel ID>")
        return SdCall("get", name)
    op = OPS.get(method)
    if op is None:
        return SdError(405, "use POST (register), PUT (renew), DELETE (deregister) or GET")
    if len(body) > MAX_BODY:
        return SdError(413, "body too large")
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        return SdError(400, "body is not JSON")
    if not isinstance(data, dict):
        return SdError(400, "body is not a JSON object")
    fields = {k: _field(data, k) for k in ("id", "name", "node", "network", "address")}
    bad = sorted(k for k, v in fields.items() if v is None)
    if bad:
        return SdError(400, f"bad field(s): {', '.join(bad)}")
    sid, name, node = fields["id"] or "", fields["name"] or "", fields["node"] or ""
    if not sid or not name:
        return SdError(400, "id and name are required")
    network = fields["network"] or "tcp"
    if network not in NETWORKS:
        return SdError(400, "network must be tcp or udp")
    address = fields["address"] or ""
    if op == "register" and (not node or not address):
        return SdError(400, "register needs node and address")
    if len(address) + len(node) > MAX_RECORD // 2:
        return SdError(400, "node or address too long")
    return SdCall(op, name, sid, node, network, address)


def fill_host(address: str, peer_host: str) -> str:
    """gost-plugins' rule: an address without a host (``:8080``) gets the caller's host."""
    if not address.startswith(":"):
        return address
    host = f"[{peer_host}]" if ":" in peer_host else peer_host
    return host + address
