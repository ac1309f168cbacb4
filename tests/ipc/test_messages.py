"""Bus messages, handoff records and the worker spec: round trips and garbage rejection."""

from __future__ import annotations

import msgspec
import pytest

from burrow.ipc.messages import (
    MAX_HANDOFF_HEADER,
    MAX_HANDOFF_PREFIX,
    MAX_MESSAGE_SIZE,
    Applied,
    ConnectorDown,
    ConnectorInfo,
    ConnectorUp,
    Delta,
    HandoffHeader,
    Heartbeat,
    Hello,
    MessageError,
    Ready,
    Reconfigure,
    Snapshot,
    SnapshotRequest,
    decode_delta,
    decode_handoff,
    decode_reply,
    decode_snapshot,
    decode_worker,
    encode,
    encode_handoff,
)
from burrow.ipc.spec import ListenerFd, SpecError, WorkerSpec, decode_spec, encode_spec
from burrow.proto.errors import LocalProtocolError, RemoteProtocolError

TID = "4d21094e-b74c-4916-86c1-d9fa36ea677b"
CID = "0f6e9f5a-0d3b-4d0c-9d55-6c1f1f4f2a10"
INFO = ConnectorInfo(
    tunnel_id=TID,
    connector_id=CID,
    worker=2,
    network="tcp",
    weight=1,
    dialect="tunnel",
    peer="203.0.113.7:40000",
    since=1700000000.25,
)
HEADER = HandoffHeader(
    kind="entrypoint",
    service="svc-0",
    tunnel_id=TID,
    connector_id=CID,
    network="tcp",
    peer="198.51.100.1:5555",
    target="example.com:80",
    reply=-1,
    hops=1,
)


@pytest.mark.parametrize(
    "msg",
    [
        Hello(index=0, pid=4242, generation=3),
        Ready(index=1),
        Heartbeat(index=2, now=12.5),
        ConnectorUp(info=INFO),
        ConnectorDown(tunnel_id=TID, connector_id=CID),
        SnapshotRequest(index=7),
        Applied(index=1, generation=4),
    ],
)
def test_worker_messages_round_trip(msg: object) -> None:
    assert decode_worker(encode(msg)) == msg  # type: ignore[arg-type]


def test_reconfigure_reaches_a_worker_as_a_reply() -> None:
    """The supervisor's Reconfigure carries opaque plan bytes; Applied is its acknowledgement."""
    msg = Reconfigure(generation=5, plans=b"\x81\xa1a\x01")
    assert decode_reply(encode(msg)) == msg
    with pytest.raises(MessageError):
        decode_worker(encode(msg))  # never accepted from a worker


def test_snapshot_and_delta_round_trip() -> None:
    snap = Snapshot(seq=9, connectors=[INFO])
    assert decode_snapshot(encode(snap)) == snap
    delta = Delta(seq=10, up=[INFO], down=[(TID, CID)])
    assert decode_delta(encode(delta)) == delta


def test_messages_carry_their_type_tag() -> None:
    assert msgspec.msgpack.decode(encode(Ready(index=1))) == {"type": "Ready", "index": 1}


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xc1",  # never-used msgpack byte
        b"\x93\x01\x02\x03",  # an array, not a map
        msgspec.msgpack.encode({"type": "Nope", "index": 1}),
        msgspec.msgpack.encode({"index": 1}),  # no tag
        msgspec.msgpack.encode({"type": "Ready", "index": "one"}),
        msgspec.msgpack.encode({"type": "Ready", "index": -1}),
        msgspec.msgpack.encode({"type": "Hello", "index": 1}),  # missing fields
        # a supervisor-only message is not a worker message
        msgspec.msgpack.encode({"type": "Snapshot", "seq": 1, "connectors": []}),
        msgspec.msgpack.encode({"type": "Ready", "index": 1}) + b"\x00",  # trailing bytes
    ],
)
def test_decode_worker_rejects_garbage_with_one_error_type(data: bytes) -> None:
    with pytest.raises(MessageError) as info:
        decode_worker(data)
    assert isinstance(info.value, RemoteProtocolError)
    assert str(info.value).startswith("worker message: ")


def test_decode_snapshot_and_delta_reject_each_other() -> None:
    with pytest.raises(MessageError, match="snapshot"):
        decode_snapshot(encode(Delta(seq=1, up=[], down=[])))
    with pytest.raises(MessageError, match="delta"):
        decode_delta(encode(Snapshot(seq=1, connectors=[])))
    bad_weight = msgspec.msgpack.encode(
        {
            "type": "Delta",
            "seq": 1,
            "up": [dict(msgspec.structs.asdict(INFO), weight=256)],
            "down": [],
        }
    )
    with pytest.raises(MessageError, match="weight"):
        decode_delta(bad_weight)


def test_oversized_message_is_refused_before_decoding() -> None:
    with pytest.raises(MessageError, match="MAX_MESSAGE_SIZE"):
        decode_delta(b"\x00" * (MAX_MESSAGE_SIZE + 1))


def test_overlong_text_field_is_refused() -> None:
    with pytest.raises(MessageError):
        decode_worker(encode(ConnectorDown(tunnel_id="x" * 5000, connector_id=CID)))


def test_handoff_round_trip_keeps_prefix_bytes_exactly() -> None:
    prefix = bytes(range(256)) * 3
    header, got = decode_handoff(encode_handoff(HEADER, prefix))
    assert header == HEADER and got == prefix
    assert decode_handoff(encode_handoff(HEADER, b"")) == (HEADER, b"")
    big = b"\x16" * MAX_HANDOFF_PREFIX
    assert decode_handoff(encode_handoff(HEADER, big))[1] == big


def test_encode_handoff_refuses_what_the_record_cannot_carry() -> None:
    with pytest.raises(LocalProtocolError, match="prefix"):
        encode_handoff(HEADER, b"x" * (MAX_HANDOFF_PREFIX + 1))
    fat = msgspec.structs.replace(HEADER, target="x" * (MAX_HANDOFF_HEADER + 1))
    with pytest.raises(LocalProtocolError, match="header"):
        encode_handoff(fat, b"")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00",
        b"\x00\x10" + b"\x80",  # header length past the end
        b"\xff\xff" + b"\x00" * 70000,  # header length over MAX_HANDOFF_HEADER
        b"\x00\x01\xc1",  # header is not msgpack
        b"\x00\x01\x80",  # empty map: fields missing
        b"\x00\x00" + b"\x00" * (MAX_HANDOFF_PREFIX + 1),  # prefix too long
    ],
)
def test_decode_handoff_rejects_garbage(data: bytes) -> None:
    with pytest.raises(MessageError):
        decode_handoff(data)


def test_handoff_header_field_limits_are_checked() -> None:
    record = encode_handoff(msgspec.structs.replace(HEADER, reply=300), b"")
    with pytest.raises(MessageError, match="reply"):
        decode_handoff(record)


def _spec(**changes: object) -> WorkerSpec:
    spec = WorkerSpec(
        index=1,
        count=2,
        generation=4,
        plans=b"\x81\xa1a\x01",
        source="cli",
        listeners=[ListenerFd("svc-0", "relay", "tcp", "127.0.0.1:8443", 5)],
        inbox_fd=6,
        outbox_fds={0: 7},
        registry_endpoint="ipc:///run/b/registry",
        updates_endpoint="ipc:///run/b/updates",
        lifeline_fd=8,
        runtime_dir="/run/b",
    )
    return msgspec.structs.replace(spec, **changes)


def test_spec_round_trip_with_defaults() -> None:
    spec = _spec()
    got = decode_spec(encode_spec(spec))
    assert got == spec
    assert (got.log_level, got.log_format, got.heartbeat_interval) == ("info", "text", 1.0)
    assert got.outbox_fds == {0: 7} and got.source == "cli"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not msgpack",
        encode_spec(_spec(index=2)),  # index must be below count
        encode_spec(_spec(heartbeat_interval=0.0)),
        encode_spec(_spec(inbox_fd=-2)),
        msgspec.msgpack.encode({"index": 0}),
    ],
)
def test_decode_spec_rejects_bad_specs(data: bytes) -> None:
    with pytest.raises(SpecError):
        decode_spec(data)
