"""Bus and handoff messages between the supervisor and its workers (msgpack, msgspec tagged Structs).

Bus frames (ZeroMQ, one frame each, no topic)::

    DEALER -> ROUTER   msgpack map {"type": "<StructName>", ...fields}   WorkerMessage
    ROUTER -> DEALER   msgpack map {"type": "Snapshot", "seq", "connectors"}
    PUB    -> SUB      msgpack map {"type": "Delta", "seq", "up", "down"}

Handoff record (one AF_UNIX SOCK_SEQPACKET datagram, the visitor's fd rides in SCM_RIGHTS)::

    +--------+-------------------------+----------------------------+
    | u16 BE | header: msgpack         | prefix: raw bytes           |
    | hlen   | HandoffHeader (hlen B)  | (<= MAX_HANDOFF_PREFIX)     |
    +--------+-------------------------+----------------------------+

The registry semantics follow docs/architecture.md, Processes (membership bus)
(the ZeroMQ guide's Clone pattern: snapshot, then deltas ordered by ``seq``).
"""

from __future__ import annotations

import struct
from typing import Annotated, Any

import msgspec

from burrow.proto.errors import LocalProtocolError, RemoteProtocolError

# A snapshot carries every connector of the host; 16 MiB is ~80k connectors, far past any real pool.
MAX_MESSAGE_SIZE = 16 * 1024 * 1024
MAX_HANDOFF_PREFIX = 65536 + 4096
MAX_HANDOFF_HEADER = 4096
MAX_HANDOFF_RECORD = 2 + MAX_HANDOFF_HEADER + MAX_HANDOFF_PREFIX
# Short text fields: ids, addresses, names. Bounded so one bad message cannot pin megabytes.
MAX_TEXT = 1024

_HLEN = struct.Struct(">H")

Text = Annotated[str, msgspec.Meta(max_length=MAX_TEXT)]
Index = Annotated[int, msgspec.Meta(ge=0)]
Seq = Annotated[int, msgspec.Meta(ge=0)]
Count = Annotated[int, msgspec.Meta(ge=0)]


class MessageError(RemoteProtocolError):
    """A bus message or handoff record could not be decoded (garbage, wrong type, over a limit)."""


class ConnectorInfo(msgspec.Struct, frozen=True):
    """One tunnel connector (an smux session held by some worker)."""

    tunnel_id: Text
    connector_id: Text
    worker: Index
    network: Text
    weight: Annotated[int, msgspec.Meta(ge=0, le=255)]
    dialect: Text
    peer: Text
    since: float
    # "" for a connector of this node. For one held by another cluster node: that node's name,
    # the address a forward to it dials, and how: "burrow" (the authenticated hop to the node's
    # advertise address) or "gost" (plain TCP to its entry point, as gost nodes forward).
    node: Text = ""
    address: Text = ""
    node_kind: Text = ""


class Hello(msgspec.Struct, frozen=True, tag=True):
    """First message of a worker process: who it is."""

    index: Index
    pid: Index
    generation: Index


class Ready(msgspec.Struct, frozen=True, tag=True):
    """The worker serves every listener of its spec."""

    index: Index


class Heartbeat(msgspec.Struct, frozen=True, tag=True):
    """Liveness, sent from inside the worker's event loop."""

    index: Index
    now: float


class ConnectorUp(msgspec.Struct, frozen=True, tag=True):
    """A connector registered in this worker."""

    info: ConnectorInfo


class ConnectorDown(msgspec.Struct, frozen=True, tag=True):
    """A connector of this worker closed."""

    tunnel_id: Text
    connector_id: Text


class ConnectorBatch(msgspec.Struct, frozen=True, tag=True):
    """Several connector changes of one worker in one message (what one loop turn announced).

    ``up`` and ``down`` never name the same connector (a connector that came and went within
    the batch is left out of both); a receiver applies ``down`` first, as a Delta.
    """

    up: list[ConnectorInfo]
    down: list[tuple[Text, Text]]


class SnapshotRequest(msgspec.Struct, frozen=True, tag=True):
    """Ask the supervisor for the whole registry (boot, or after a gap in the deltas)."""

    index: Index


class Snapshot(msgspec.Struct, frozen=True, tag=True):
    """The whole registry as of ``seq``."""

    seq: Seq
    connectors: list[ConnectorInfo]
    # The cluster store (Redis) is unreachable: other nodes' connectors are unknown right now.
    cluster_down: bool = False


class Reconfigure(msgspec.Struct, frozen=True, tag=True):
    """SIGHUP reload applied in place: the new plans for a running worker (same listeners).

    ``plans`` is msgpack of ``burrow.config.planset.PlanSet``, opaque here.
    """

    generation: int
    plans: bytes


class Applied(msgspec.Struct, frozen=True, tag=True):
    """A worker's acknowledgement of a Reconfigure: it serves ``generation`` now."""

    index: Index
    generation: Index


class Delta(msgspec.Struct, frozen=True, tag=True):
    """One registry change, stamped with the next ``seq``; ``down`` holds (tunnel_id, connector_id)."""

    seq: Seq
    up: list[ConnectorInfo]
    down: list[tuple[Text, Text]]
    # As of this delta (Snapshot.cluster_down): every delta carries the current value.
    cluster_down: bool = False


class ConnectorStats(msgspec.Struct, frozen=True, array_like=True):
    """One live connector's traffic (``role``: "server" end of a relay port or "client" end).

    Bytes are on the tunnel connection (smux framing included), counted per read or write batch.
    """

    service: Text
    role: Text
    tunnel_id: Text
    connector_id: Text
    network: Text
    dialect: Text
    peer: Text
    since: float
    bytes_in: Count
    bytes_out: Count
    streams_open: Count
    streams_total: Count


class TunnelTraffic(msgspec.Struct, frozen=True, array_like=True):
    """Traffic of one (service, role, tunnel) since the worker started, closed connectors too."""

    service: Text
    role: Text
    tunnel_id: Text
    bytes_in: Count
    bytes_out: Count
    streams_total: Count


class Stats(msgspec.Struct, frozen=True, tag=True):
    """A worker's counters, sent with its heartbeat while the admin endpoint is on.

    Every count is monotonic over the process's life; the supervisor keeps a dead process's last
    report, so sums over workers never go backwards. ``events`` maps "service|name" to a count
    (entry outcomes, handoffs, auth failures: docs/admin.md).
    """

    index: Index
    pid: Index
    connectors: list[ConnectorStats]
    tunnels: list[TunnelTraffic]
    events: dict[Text, Count]


WorkerMessage = (
    Hello
    | Ready
    | Heartbeat
    | ConnectorUp
    | ConnectorDown
    | ConnectorBatch
    | SnapshotRequest
    | Applied
    | Stats
)
BusMessage = WorkerMessage | Snapshot | Delta


class HandoffHeader(msgspec.Struct, frozen=True):
    """Routing decision that travels with a handed-off visitor connection."""

    kind: Text
    service: Text
    tunnel_id: Text
    connector_id: Text
    network: Text
    peer: Text
    target: Text
    reply: Annotated[int, msgspec.Meta(ge=-1, le=255)]
    hops: Annotated[int, msgspec.Meta(ge=0, le=255)]


_encoder = msgspec.msgpack.Encoder()
_worker_decoder = msgspec.msgpack.Decoder(WorkerMessage)
_snapshot_decoder = msgspec.msgpack.Decoder(Snapshot)
_reply_decoder = msgspec.msgpack.Decoder(Snapshot | Reconfigure)
_delta_decoder = msgspec.msgpack.Decoder(Delta)
_header_decoder = msgspec.msgpack.Decoder(HandoffHeader)


def encode(msg: BusMessage | Reconfigure) -> bytes:
    """Encode one bus message to msgpack."""
    return _encoder.encode(msg)


def _decode(decoder: msgspec.msgpack.Decoder[Any], data: bytes | memoryview, what: str) -> Any:
    if len(data) > MAX_MESSAGE_SIZE:
        raise MessageError(f"{what}: {len(data)} bytes exceeds MAX_MESSAGE_SIZE={MAX_MESSAGE_SIZE}")
    try:
        return decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise MessageError(f"{what}: {exc}") from exc


def decode_worker(data: bytes) -> WorkerMessage:
    """Decode a worker -> supervisor message; raises MessageError."""
    msg: WorkerMessage = _decode(_worker_decoder, data, "worker message")
    return msg


def decode_snapshot(data: bytes) -> Snapshot:
    """Decode a Snapshot reply; raises MessageError."""
    msg: Snapshot = _decode(_snapshot_decoder, data, "snapshot")
    return msg


def decode_reply(data: bytes) -> Snapshot | Reconfigure:
    """Decode a message the supervisor sent to one worker; raises MessageError."""
    msg: Snapshot | Reconfigure = _decode(_reply_decoder, data, "reply")
    return msg


def decode_delta(data: bytes) -> Delta:
    """Decode a published Delta; raises MessageError."""
    msg: Delta = _decode(_delta_decoder, data, "delta")
    return msg


def encode_handoff(header: HandoffHeader, prefix: bytes) -> bytes:
    """Build one handoff record; LocalProtocolError when header or prefix exceed their limits."""
    if len(prefix) > MAX_HANDOFF_PREFIX:
        raise LocalProtocolError(
            f"handoff prefix of {len(prefix)} bytes exceeds {MAX_HANDOFF_PREFIX}"
        )
    head = _encoder.encode(header)
    if len(head) > MAX_HANDOFF_HEADER:
        raise LocalProtocolError(
            f"handoff header of {len(head)} bytes exceeds {MAX_HANDOFF_HEADER}"
        )
    return b"".join((_HLEN.pack(len(head)), head, prefix))


def decode_handoff(data: bytes) -> tuple[HandoffHeader, bytes]:
    """Split one handoff record into its header and prefix; raises MessageError."""
    if len(data) < _HLEN.size:
        raise MessageError(f"handoff record of {len(data)} bytes is shorter than its length field")
    if len(data) > MAX_HANDOFF_RECORD:
        raise MessageError(f"handoff record of {len(data)} bytes exceeds {MAX_HANDOFF_RECORD}")
    (hlen,) = _HLEN.unpack_from(data)
    if hlen > MAX_HANDOFF_HEADER or _HLEN.size + hlen > len(data):
        raise MessageError(f"handoff header length {hlen} does not fit the {len(data)}-byte record")
    view = memoryview(data)
    header: HandoffHeader = _decode(
        _header_decoder, view[_HLEN.size : _HLEN.size + hlen], "handoff"
    )
    prefix = bytes(view[_HLEN.size + hlen :])
    if len(prefix) > MAX_HANDOFF_PREFIX:
        raise MessageError(f"handoff prefix of {len(prefix)} bytes exceeds {MAX_HANDOFF_PREFIX}")
    return header, prefix
