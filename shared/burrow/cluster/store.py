"""The cluster's Redis layout, sans IO: key names, record codecs, and which entries are live.

gost-plugins' layout (ginuerzh/gost-plugins ``sd/sd.go``), so gost tooling reads ours::

    <tunnel ID>            hash   field <connector ID> -> {"Node","Network","Address","Renew"}
                                  (Renew: unix seconds; EXPIRE on the key)

Burrow adds, without touching what gost reads (Go's JSON decoder ignores unknown fields)::

    entry JSON "Kind": "burrow"      the entry is a Burrow node's (its node record says how to
                                     reach it); entries without it are gost nodes'
    burrow:tunnels         set    tunnel IDs with entries (gost's layout has no index)
    burrow:nodes           set    names of Burrow nodes
    burrow:node:<name>     hash   advertise, address, kind, heartbeat (unix seconds); EXPIRE
    burrow:sd              pubsub {"op": "register"|"deregister"|"node_up"|"node_down", "name",
                                   "id", "node"} so other nodes learn at once

A Burrow node's entries are live while its heartbeat is younger than :data:`NODE_DEAD_TTLS`
x ttl (so a dead node is dropped within 2 x ttl by a reader that resyncs every ttl / 3); a gost
entry while its Renew is younger than ``gost_expiry``. docs/cluster.md.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from burrow.ipc.messages import ConnectorInfo

TUNNELS = "burrow:tunnels"
NODES = "burrow:nodes"
CHANNEL = "burrow:sd"
NODE_PREFIX = "burrow:node:"
KIND_BURROW = "burrow"
KIND_GOST = "gost"
# A Burrow node whose heartbeat is older than this many TTLs is dead: with a heartbeat every
# ttl / 3 and readers resyncing every ttl / 3 it is dropped within 1.5 + 1/3 < 2 TTLs.
NODE_DEAD_TTLS = 1.5
# gost renews every tunnel.ttl (15 s by default), whatever our ttl is; gost-plugins' own
# expiry is 1-3 minutes. A gost entry is live this long after its Renew.
GOST_EXPIRY = 60.0
# Tunnel-hash EXPIRE: past every writer's renew period (ours and gost's).
KEY_EXPIRY = 180
# Bounds on what a record may hold: an entry or message larger than this is garbage.
MAX_RECORD = 2048
NETWORKS = ("tcp", "udp")


def node_key(name: str) -> str:
    """The Redis key of node ``name``'s record."""
    return NODE_PREFIX + name


@dataclass(frozen=True, slots=True)
class Entry:
    """One connector as stored: which node holds it, its network, address and last renew."""

    node: str
    network: str
    address: str
    renew: int
    kind: str = KIND_GOST


@dataclass(frozen=True, slots=True)
class NodeRecord:
    """A Burrow node: where forwards go (advertise), what gost nodes dial, last heartbeat."""

    name: str
    advertise: str
    address: str
    heartbeat: float


@dataclass(frozen=True, slots=True)
class Message:
    """One pub/sub notice."""

    op: str
    name: str = ""
    id: str = ""
    node: str = ""


def encode_entry(entry: Entry) -> str:
    """The hash value of ``entry`` (gost's field names; "Kind" only for Burrow's own)."""
    data: dict[str, Any] = {
        "Node": entry.node,
        "Network": entry.network,
        "Address": entry.address,
        "Renew": int(entry.renew),
    }
    if entry.kind == KIND_BURROW:
        data["Kind"] = KIND_BURROW
    return json.dumps(data, separators=(",", ":"))


def _json_object(raw: str | bytes) -> dict[str, Any] | None:
    """A JSON object of at most MAX_RECORD bytes; None for anything else."""
    if len(raw) > MAX_RECORD:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key, "")
    return value if isinstance(value, str) else ""


def decode_entry(raw: str | bytes) -> Entry | None:
    """An entry from its hash value; None for anything malformed (gost-plugins skips those)."""
    data = _json_object(raw)
    if data is None:
        return None
    node, address = _text(data, "Node"), _text(data, "Address")
    network = _text(data, "Network") or "tcp"
    renew = data.get("Renew", 0)
    if not node or not address or network not in NETWORKS:
        return None
    if isinstance(renew, bool) or not isinstance(renew, int | float) or not math.isfinite(renew):
        return None
    kind = KIND_BURROW if data.get("Kind") == KIND_BURROW else KIND_GOST
    return Entry(node, network, address, int(renew), kind)


def encode_node(record: NodeRecord) -> dict[str, str]:
    """The fields of a node record's hash."""
    return {
        "advertise": record.advertise,
        "address": record.address,
        "kind": KIND_BURROW,
        "heartbeat": repr(float(record.heartbeat)),
    }


def decode_node(name: str, fields: Mapping[str, str]) -> NodeRecord | None:
    """A node record from its hash; None when incomplete or malformed."""
    advertise = fields.get("advertise", "")
    try:
        heartbeat = float(fields.get("heartbeat", ""))
    except ValueError:
        return None
    if not advertise or not math.isfinite(heartbeat):
        return None
    return NodeRecord(name, advertise, fields.get("address", "") or advertise, heartbeat)


def encode_message(msg: Message) -> str:
    """A pub/sub payload."""
    return json.dumps(
        {"op": msg.op, "name": msg.name, "id": msg.id, "node": msg.node}, separators=(",", ":")
    )


def decode_message(raw: str | bytes) -> Message | None:
    """A pub/sub payload; None when it is not one of ours."""
    data = _json_object(raw)
    if data is None:
        return None
    op = _text(data, "op")
    if op not in ("register", "deregister", "node_up", "node_down"):
        return None
    return Message(op, _text(data, "name"), _text(data, "id"), _text(data, "node"))


@dataclass(frozen=True, slots=True)
class Liveness:
    """How a reader judges entries: its own node (skipped), TTL, gost expiry, and the time."""

    self_node: str
    ttl: float
    now: float
    gost_expiry: float = GOST_EXPIRY

    def node_alive(self, record: NodeRecord | None) -> bool:
        """A Burrow node is alive while its heartbeat is recent."""
        return record is not None and self.now - record.heartbeat <= NODE_DEAD_TTLS * self.ttl


def decode_entries(fields: Mapping[str, str]) -> dict[str, Entry]:
    """A tunnel hash's well-formed entries by connector ID."""
    out = {}
    for connector_id, raw in fields.items():
        entry = decode_entry(raw)
        if entry is not None:
            out[connector_id] = entry
    return out


def remote_connectors(
    tunnel_id: str,
    fields: Mapping[str, str],
    nodes: Mapping[str, NodeRecord],
    live: Liveness,
) -> list[ConnectorInfo]:
    """Other nodes' live connectors of one tunnel hash, as ConnectorInfo with node set.

    ``nodes`` is every Burrow node record read (dead or alive). A Burrow entry is reached at
    its node's advertise address; a gost entry at its registered Address (gost's entry point).
    """
    return remote_from_entries(tunnel_id, decode_entries(fields), nodes, live)


def remote_from_entries(
    tunnel_id: str,
    entries: Mapping[str, Entry],
    nodes: Mapping[str, NodeRecord],
    live: Liveness,
) -> list[ConnectorInfo]:
    """:func:`remote_connectors` of already decoded entries (a reader's cache)."""
    out: list[ConnectorInfo] = []
    for connector_id, entry in entries.items():
        if entry.node == live.self_node:
            continue
        if entry.kind == KIND_BURROW:
            record = nodes.get(entry.node)
            if record is None or not live.node_alive(record):
                continue
            address, kind = record.advertise, KIND_BURROW
        else:
            if live.now - entry.renew > max(live.gost_expiry, 2 * live.ttl):
                continue
            address, kind = entry.address, KIND_GOST
        out.append(
            ConnectorInfo(
                tunnel_id=tunnel_id,
                connector_id=connector_id,
                worker=0,
                network=entry.network,
                weight=1,
                dialect="",
                peer=entry.node,
                since=0.0,  # stable: a renew must not look like a change
                node=entry.node,
                address=address,
                node_kind=kind,
            )
        )
    out.sort(key=lambda c: (c.node, c.connector_id))
    return out


def sd_services(tunnel_id: str, fields: Mapping[str, str], live: Liveness) -> list[dict[str, str]]:
    """gost's SD ``Get`` answer for one tunnel: every fresh entry (any node, this one too).

    Freshness as gost-plugins judges it (Renew younger than the expiry), so a gost node sees
    Burrow's entries at their registered Address (the internal listener) like any other.
    """
    expiry = max(live.gost_expiry, 2 * live.ttl)
    out = []
    for connector_id, raw in sorted(fields.items()):
        entry = decode_entry(raw)
        if entry is None or live.now - entry.renew > expiry:
            continue
        out.append(
            {"id": connector_id, "name": tunnel_id, "node": entry.node,
             "network": entry.network, "address": entry.address}
        )  # fmt: skip
    return out


def placement(
    connectors: Iterable[ConnectorInfo], self_node: str
) -> dict[str, list[dict[str, str]]]:
    """Where each tunnel lives, for ``/api/cluster`` and ``burrow status``."""
    out: dict[str, list[dict[str, str]]] = {}
    for c in connectors:
        out.setdefault(c.tunnel_id, []).append(
            {"node": c.node or self_node, "connector_id": c.connector_id, "network": c.network,
             "address": c.address, "kind": c.node_kind or "local"}
        )  # fmt: skip
    for rows in out.values():
        rows.sort(key=lambda r: (r["node"], r["connector_id"]))
    return dict(sorted(out.items()))
