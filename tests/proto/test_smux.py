"""Scripted tests of the smux codec and session (docs/protocol.md, smux frames)."""

from __future__ import annotations

import random
import struct
from collections import defaultdict

import pytest

from burrow.proto.errors import LocalProtocolError
from burrow.proto.need import NEED_DATA
from burrow.proto.smux import (
    FIN,
    INITIAL_PEER_WINDOW,
    MAX_STREAMS,
    NOP,
    PSH,
    REFUSALS_PER_LIMIT,
    SYN,
    UNLIMITED_WINDOW,
    UPD,
    ClosedStreamError,
    FlowControlError,
    Frame,
    FrameReader,
    SmuxConfig,
    SmuxError,
    SmuxEvent,
    SmuxSession,
    StreamData,
    StreamEnded,
    StreamOpened,
    StreamRefused,
    StreamWritable,
    encode_frame,
    encode_header,
    encode_upd,
)

H = bytes.fromhex
MIB = 1 << 20


def norm(events: list[SmuxEvent]) -> list[tuple[str, int, bytes]]:
    """Events as comparable tuples, with adjacent data pieces of one stream merged."""
    out: list[tuple[str, int, bytes]] = []
    for ev in events:
        if isinstance(ev, StreamData):
            assert len(ev.data) > 0
            if out and out[-1][0] == "data" and out[-1][1] == ev.sid:
                out[-1] = ("data", ev.sid, out[-1][2] + bytes(ev.data))
            else:
                out.append(("data", ev.sid, bytes(ev.data)))
        else:
            out.append((type(ev).__name__, ev.sid, b""))
    return out


def feed(session: SmuxSession, pieces: list[bytes], now: float = 0.0) -> list[SmuxEvent]:
    """Feed pieces in order; data views are copied out before the next call."""
    events: list[SmuxEvent] = []
    for p in pieces:
        for ev in session.receive_data(p, now):
            if isinstance(ev, StreamData):
                ev = StreamData(ev.sid, bytes(ev.data))
            events.append(ev)
        assert session.partial_size < 16
    return events


def session(
    version: int = 1, *, client: bool = False, now: float = 0.0, **kw: object
) -> SmuxSession:
    cfg = SmuxConfig(version=version, **kw)  # type: ignore[arg-type]
    return SmuxSession(cfg, client=client, now=now)


# -- spec §3.3 examples ----------------------------------------------------------------------

SPEC_EXAMPLES = [
    (1, SYN, 3, b"", "01 00 00 00 03 00 00 00"),
    (1, PSH, 3, b"hi", "01 02 02 00 03 00 00 00 68 69"),
    (1, FIN, 3, b"", "01 01 00 00 03 00 00 00"),
    (1, NOP, 0, b"", "01 03 00 00 00 00 00 00"),
    (2, UPD, 3, struct.pack("<II", 1000, MIB), "02 04 08 00 03 00 00 00 e8 03 00 00 00 00 10 00"),
]


@pytest.mark.parametrize(("version", "cmd", "sid", "data", "wire"), SPEC_EXAMPLES)
def test_spec_example_encode_and_read(
    version: int, cmd: int, sid: int, data: bytes, wire: str
) -> None:
    assert encode_frame(version, cmd, sid, data) == H(wire)
    reader = FrameReader()
    reader.receive_data(H(wire))
    assert reader.next_frame() == Frame(version, cmd, sid, data)
    assert reader.next_frame() is NEED_DATA
    assert reader.buffered == 0


def test_spec_examples_from_the_session_side() -> None:
    client = session(1, client=True)
    sid, syn = client.open_stream()
    assert (sid, syn) == (3, H("01 00 00 00 03 00 00 00"))
    bufs, n = client.send(sid, b"hi")
    assert n == 2 and b"".join(bufs) == H("01 02 02 00 03 00 00 00 68 69")
    assert client.ping() == H("01 03 00 00 00 00 00 00")
    assert client.close_stream(sid) == H("01 01 00 00 03 00 00 00")
    assert client.close_stream(sid) == b""

    server = session(1)
    wire = H(
        "01 00 00 00 03 00 00 00 01 02 02 00 03 00 00 00 68 69"
        "01 03 00 00 00 00 00 00 01 01 00 00 03 00 00 00"
    )
    assert norm(server.receive_data(wire, 0)) == [
        ("StreamOpened", 3, b""),
        ("data", 3, b"hi"),
        ("StreamEnded", 3, b""),
    ]

    v2 = session(2, max_stream_buffer=MIB)
    v2.receive_data(encode_frame(2, SYN, 3) + encode_frame(2, PSH, 3, b"x" * 1000), 0)
    assert v2.consumed(3, 1000) == H("02 04 08 00 03 00 00 00 e8 03 00 00 00 00 10 00")
    assert encode_upd(2, 3, 1000, MIB) == H("02 04 08 00 03 00 00 00 e8 03 00 00 00 00 10 00")


def test_encode_header_range_is_a_local_error() -> None:
    assert encode_header(2, PSH, 65535, 0xFFFFFFFF) == H("02 02 ff ff ff ff ff ff")
    with pytest.raises(LocalProtocolError):
        encode_header(1, PSH, 65536, 3)
    with pytest.raises(LocalProtocolError):
        encode_header(1, PSH, 1, -1)


# -- segmentation ----------------------------------------------------------------------------


def script(version: int) -> bytes:
    """Every command, dropped data, duplicates and odd LENGTHs, as one byte string."""
    f = encode_frame
    return b"".join(
        [
            f(version, SYN, 3),
            f(version, PSH, 3, b"hello world"),
            f(version, NOP, 0),
            f(version, SYN, 5),
            f(version, SYN, 3),  # duplicate SYN: ignored
            f(version, PSH, 5, bytes(range(256)) * 3),
            f(version, PSH, 9, b"to nowhere"),  # unknown sid: dropped
            f(version, PSH, 3, b""),  # zero-length PSH: nothing
            f(version, UPD, 3, struct.pack("<II", 0, MIB)),
            f(version, FIN, 7),  # unknown sid: ignored
            f(version, PSH, 3, b"!"),
            f(version, FIN, 3),
            f(version, FIN, 3),  # second FIN: no second event
            f(version, PSH, 5, b"z" * 40000),
            f(version, FIN, 5),
        ]
    )


def expected_script_events() -> list[tuple[str, int, bytes]]:
    return [
        ("StreamOpened", 3, b""),
        ("data", 3, b"hello world"),
        ("StreamOpened", 5, b""),
        ("data", 5, bytes(range(256)) * 3),
        ("data", 3, b"!"),
        ("StreamEnded", 3, b""),
        ("data", 5, b"z" * 40000),
        ("StreamEnded", 5, b""),
    ]


@pytest.mark.parametrize("version", [1, 2])
def test_every_two_way_split_gives_the_same_events(version: int) -> None:
    wire = script(version)
    whole = norm(session(version).receive_data(wire, 0))
    assert whole == expected_script_events()
    for cut in range(len(wire) + 1):
        assert norm(feed(session(version), [wire[:cut], wire[cut:]])) == whole, cut


@pytest.mark.parametrize("version", [1, 2])
def test_byte_by_byte_and_random_splits(version: int) -> None:
    wire = script(version)
    small = wire[:1200]  # byte-by-byte over the control-heavy start
    expect = norm(session(version).receive_data(small, 0))
    assert norm(feed(session(version), [small[i : i + 1] for i in range(len(small))])) == expect
    rng = random.Random(7)
    for _ in range(50):
        cuts = sorted(rng.sample(range(1, len(wire)), 12))
        pieces = [wire[a:b] for a, b in zip([0, *cuts], [*cuts, len(wire)])]
        assert norm(feed(session(version), pieces)) == expected_script_events()


def test_frame_reader_splits_the_script_at_every_byte() -> None:
    wire = script(2)
    reader = FrameReader(2)
    frames = []
    for i in range(len(wire)):
        reader.receive_data(wire[i : i + 1])
        while (fr := reader.next_frame()) is not NEED_DATA:
            frames.append(fr)
    assert reader.buffered == 0
    assert (
        b"".join(
            encode_header(f.version, f.cmd, len(f.data), f.sid) + bytes(f.data) for f in frames
        )
        == wire
    )


def test_control_frames_ignore_length_and_upd_ignores_it_too() -> None:
    # xtaci reads no payload after SYN/FIN/NOP and exactly 8 bytes after UPD, whatever LENGTH says.
    wire = (
        encode_header(1, SYN, 5, 3)
        + encode_header(1, PSH, 2, 3)
        + b"ok"
        + encode_header(1, UPD, 0, 3)
        + struct.pack("<II", 1, 2)
        + encode_header(1, NOP, 9, 0)
        + encode_header(1, FIN, 1, 3)
    )
    assert norm(session(1).receive_data(wire, 0)) == [
        ("StreamOpened", 3, b""),
        ("data", 3, b"ok"),
        ("StreamEnded", 3, b""),
    ]
    reader = FrameReader()
    reader.receive_data(wire)
    cmds = []
    while (fr := reader.next_frame()) is not NEED_DATA:
        cmds.append((fr.cmd, bytes(fr.data)))
    assert cmds == [
        (SYN, b""),
        (PSH, b"ok"),
        (UPD, struct.pack("<II", 1, 2)),
        (NOP, b""),
        (FIN, b""),
    ]


def test_stream_data_is_a_view_of_the_input_not_a_copy() -> None:
    s = session(1)
    wire = encode_frame(1, SYN, 3) + encode_frame(1, PSH, 3, b"payload")
    events = s.receive_data(wire, 0)
    data = events[1].data
    assert isinstance(data, memoryview) and data.obj is wire


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("ours", "theirs"), [(1, 2), (2, 1), (1, 0), (2, 3)])
def test_version_mismatch_kills_the_session(ours: int, theirs: int) -> None:
    s = session(ours)
    good = encode_frame(ours, NOP, 0)
    with pytest.raises(SmuxError, match="version"):
        s.receive_data(good + encode_header(theirs, NOP, 0, 0), 0)
    with pytest.raises(SmuxError):  # sticky: the session stays dead
        s.receive_data(good, 0)


@pytest.mark.parametrize("cmd", [5, 6, 0x80, 0xFF])
def test_unknown_command_kills_the_session(cmd: int) -> None:
    s = session(2)
    with pytest.raises(SmuxError, match="command"):
        s.receive_data(encode_header(2, SYN, 0, 3)[:5], 0)
        s.receive_data(encode_header(2, SYN, 0, 3)[5:] + encode_header(2, cmd, 0, 3), 0)
    reader = FrameReader()
    reader.receive_data(encode_header(2, cmd, 0, 3))
    with pytest.raises(SmuxError):
        reader.next_frame()


def test_frame_reader_versions() -> None:
    reader = FrameReader()
    reader.receive_data(encode_frame(2, NOP, 0) + encode_frame(1, NOP, 0))
    assert reader.next_frame() == Frame(2, NOP, 0, b"")
    assert reader.version == 2
    with pytest.raises(SmuxError):  # no mix
        reader.next_frame()
    for version, wire in [(None, encode_frame(3, NOP, 0)), (1, encode_frame(2, NOP, 0))]:
        r = FrameReader(version)
        r.receive_data(wire)
        with pytest.raises(SmuxError):
            r.next_frame()
    with pytest.raises(ValueError):
        FrameReader(3)


def test_syn_past_the_stream_limit_is_refused_then_a_flood_fails() -> None:
    s = session(1)
    wire = b"".join(encode_header(1, SYN, 0, 2 * i + 3) for i in range(MAX_STREAMS))
    assert len(s.receive_data(wire, 0)) == MAX_STREAMS
    (ev,) = s.receive_data(encode_header(1, SYN, 0, 1), 0)
    assert ev == StreamRefused(1, encode_header(1, FIN, 0, 1))
    assert len(s.stream_ids) == MAX_STREAMS  # nothing opened
    small = SmuxSession(SmuxConfig(version=2), client=False, now=0, max_streams=2)
    small.receive_data(encode_header(2, SYN, 0, 1) + encode_header(2, SYN, 0, 3), 0)
    refused = b"".join(encode_header(2, SYN, 0, 2 * i + 5) for i in range(2 * REFUSALS_PER_LIMIT))
    assert all(type(e) is StreamRefused for e in small.receive_data(refused, 0))
    with pytest.raises(SmuxError, match="past the limit"):
        small.receive_data(encode_header(2, SYN, 0, 99), 0)
    with pytest.raises(SmuxError):  # sticky
        small.receive_data(encode_header(2, NOP, 0, 0), 0)


def test_send_on_closed_or_unknown_or_ended_stream() -> None:
    c = session(1, client=True)
    with pytest.raises(ClosedStreamError):
        c.send(3, b"x")
    sid, _ = c.open_stream()
    c.close_stream(sid)
    with pytest.raises(ClosedStreamError):
        c.send(sid, b"x")
    sid, _ = c.open_stream()
    c.receive_data(encode_frame(1, FIN, sid), 0)
    assert c.is_open(sid)
    with pytest.raises(ClosedStreamError):  # smux has no half-close: writes fail after FIN
        c.send(sid, b"x")
    assert c.close_stream(sid) == encode_frame(1, FIN, sid)  # our FIN still goes out
    assert not c.is_open(sid)
    assert issubclass(ClosedStreamError, LocalProtocolError)


def test_consumed_beyond_received_is_a_local_error() -> None:
    s = session(2)
    s.receive_data(encode_frame(2, SYN, 3) + encode_frame(2, PSH, 3, b"abc"), 0)
    with pytest.raises(LocalProtocolError):
        s.consumed(3, 4)
    assert s.consumed(99, 10) == b""  # forgotten streams: nothing to report


# -- stream ids ------------------------------------------------------------------------------


def test_stream_ids_by_role() -> None:
    c = session(1, client=True)
    assert [c.open_stream()[0] for _ in range(4)] == [3, 5, 7, 9]
    s = session(1, client=False)
    assert [s.open_stream()[0] for _ in range(3)] == [2, 4, 6]
    assert s.stream_ids == frozenset({2, 4, 6})
    # A SYN from the peer for an id we would pick next is not reused by open_stream.
    c.receive_data(encode_frame(1, SYN, 11), 0)
    assert c.open_stream()[0] == 13


def test_stream_id_exhaustion() -> None:
    c = session(1, client=True)
    c._next_sid = 0xFFFFFFFD  # test-only shortcut to the end of the id space
    assert c.open_stream()[0] == 0xFFFFFFFF
    with pytest.raises(LocalProtocolError, match="exhausted"):
        c.open_stream()


# -- sending ---------------------------------------------------------------------------------


def test_send_splits_at_max_frame_size_without_copying() -> None:
    c = session(1, client=True, max_frame_size=1000)
    sid, _ = c.open_stream()
    data = bytes(random.Random(1).randbytes(3500))
    bufs, n = c.send(sid, data)
    assert n == 3500 and len(bufs) == 8
    sizes = [len(b) for b in bufs[1::2]]
    assert sizes == [1000, 1000, 1000, 500]
    for hdr, payload in zip(bufs[::2], bufs[1::2]):
        assert hdr == encode_header(1, PSH, len(payload), sid)
        assert isinstance(payload, memoryview) and payload.obj is data
    small, n = c.send(sid, b"tiny")
    assert n == 4 and small[1] == b"tiny"
    assert c.send(sid, b"") == ([], 0)
    assert c.send_window(sid) == UNLIMITED_WINDOW


def test_v2_window_blocks_then_upd_reopens() -> None:
    c = session(2, client=True)
    sid, _ = c.open_stream()
    data = memoryview(bytes(300000))
    bufs, n = c.send(sid, data)
    assert n == INITIAL_PEER_WINDOW < len(data)
    assert sum(len(b) for b in bufs[1::2]) == n
    assert c.send_window(sid) == 0
    assert c.send(sid, data[n:]) == ([], 0)
    # An UPD for another state of the stream that still leaves no room: no event.
    assert c.receive_data(encode_upd(2, sid, 0, INITIAL_PEER_WINDOW), 0) == []
    events = c.receive_data(encode_upd(2, sid, 100000, MIB), 0)
    assert events == [StreamWritable(sid)]
    assert c.send_window(sid) == MIB - (INITIAL_PEER_WINDOW - 100000)
    bufs, m = c.send(sid, data[n:])
    assert m == len(data) - n
    # Not blocked any more: further UPDs are silent.
    assert c.receive_data(encode_upd(2, sid, 300000, MIB), 0) == []
    assert c.send_window(sid) == MIB


def test_v2_peer_consumed_more_than_sent_fails_the_write() -> None:
    c = session(2, client=True)
    sid, _ = c.open_stream()
    c.send(sid, b"abc")
    c.receive_data(encode_upd(2, sid, 10, MIB), 0)
    with pytest.raises(FlowControlError):
        c.send(sid, b"more")
    assert c.send_window(sid) == 0


def test_v1_ignores_upd_for_flow_control() -> None:
    c = session(1, client=True)
    sid, _ = c.open_stream()
    c.receive_data(encode_frame(1, UPD, sid, struct.pack("<II", 0, 0)), 0)
    assert c.send(sid, bytes(500000))[1] == 500000


def test_consumed_sends_upd_after_first_read_then_every_half_buffer() -> None:
    s = session(2, max_stream_buffer=65536)
    s.receive_data(encode_frame(2, SYN, 3), 0)
    for _ in range(8):  # 240000: within the 262144 the peer may send before our first UPD
        s.receive_data(encode_frame(2, PSH, 3, bytes(30000)), 0)
    assert s.unread(3) == 240000
    assert s.consumed(3, 10) == encode_upd(2, 3, 10, 65536)  # first read
    assert s.consumed(3, 32767) == b""
    assert s.consumed(3, 1) == encode_upd(2, 3, 32778, 65536)  # 32768 since the last UPD
    got = [s.consumed(3, 1000) for _ in range(70)]
    sent = [i for i, u in enumerate(got) if u]
    assert sent == [32, 65]  # every 32768 bytes: after 33 and 66 calls of 1000
    assert got[32] == encode_upd(2, 3, 32778 + 33000, 65536)
    v1 = session(1)
    v1.receive_data(encode_frame(1, SYN, 3) + encode_frame(1, PSH, 3, bytes(100)), 0)
    assert v1.consumed(3, 100) == b""


def test_unread_accounting_and_receive_buffer() -> None:
    s = session(1, max_receive_buffer=1000, max_stream_buffer=1000)
    s.receive_data(encode_frame(1, SYN, 3) + encode_frame(1, SYN, 5), 0)
    s.receive_data(encode_frame(1, PSH, 3, bytes(600)) + encode_frame(1, PSH, 5, bytes(400)), 0)
    assert s.unread_total == 1000 and s.receive_buffer_full
    s.consumed(3, 100)
    assert s.unread_total == 900 and not s.receive_buffer_full
    s.close_stream(5)  # its unread bytes are dropped with it
    assert s.unread_total == 500 and s.unread(5) == 0


def test_config_is_validated_like_xtaci() -> None:
    for bad in [
        {"version": 3},
        {"max_frame_size": 0},
        {"max_frame_size": 65536},
        {"max_stream_buffer": 0},
        {"max_stream_buffer": 8 * MIB},
        {"keepalive_interval": 0},
        {"keepalive_interval": 40.0},
    ]:
        with pytest.raises(ValueError):
            SmuxConfig(**bad)  # type: ignore[arg-type]
    SmuxConfig(keepalive_disabled=True, keepalive_interval=0)


# -- keepalive -------------------------------------------------------------------------------


def test_keepalive_nop_then_dead_without_traffic() -> None:
    s = session(2, now=100.0)
    assert s.next_deadline() == 110.0
    assert s.poll(105.0) == (b"", False)
    assert s.poll(110.0) == (encode_frame(2, NOP, 0), False)
    assert s.next_deadline() == 120.0
    assert s.poll(111.0) == (b"", False)
    assert s.poll(120.0) == (encode_frame(2, NOP, 0), False)
    assert s.poll(130.0) == (b"", True)  # 30 s without a single frame
    assert s.poll(131.0) == (b"", True)


def test_keepalive_traffic_keeps_the_session_alive() -> None:
    s = session(1, now=0.0)
    s.receive_data(encode_frame(1, NOP, 0), 5.0)
    assert s.poll(30.0) == (encode_frame(1, NOP, 0), False)  # ping tick and check tick at once
    assert s.next_deadline() == 40.0
    s.receive_data(encode_frame(1, NOP, 0), 59.0)
    assert s.poll(60.0)[1] is False
    assert s.poll(90.0) == (b"", True)


def test_keepalive_late_poll_keeps_the_ticker_phase() -> None:
    s = session(1, now=0.0, keepalive_timeout=1000.0)
    assert s.poll(35.0) == (encode_frame(1, NOP, 0), False)  # missed ticks collapse into one
    assert s.next_deadline() == 40.0


def test_keepalive_not_dead_while_receive_buffer_is_full() -> None:
    s = session(1, now=0.0, max_receive_buffer=100, max_stream_buffer=100)
    s.receive_data(encode_frame(1, SYN, 3) + encode_frame(1, PSH, 3, bytes(100)), 1.0)
    assert s.poll(30.0)[1] is False  # traffic in the first period
    assert s.poll(60.0)[1] is False  # silence, but the driver stopped reading for us
    s.consumed(3, 1)
    assert s.poll(90.0)[1] is True


def test_keepalive_disabled() -> None:
    s = session(1, keepalive_disabled=True)
    assert s.next_deadline() is None
    assert s.poll(1e9) == (b"", False)


# -- two sessions back to back ---------------------------------------------------------------


class Side:
    """One end of an in-memory link: a session, what it must send, what it got."""

    def __init__(self, sess: SmuxSession, rng: random.Random) -> None:
        self.sess = sess
        self.rng = rng
        self.out = bytearray()  # bytes on the wire towards the peer
        self.todo: dict[int, memoryview] = {}
        self.got: dict[int, bytearray] = defaultdict(bytearray)
        self.ended: set[int] = set()
        self.opened: list[int] = []
        self.backlog: dict[int, int] = defaultdict(int)  # received, not yet consumed

    def write(self, bufs: list[bytes | memoryview]) -> None:
        for b in bufs:
            self.out += b

    def pump_sends(self) -> None:
        for sid, rest in list(self.todo.items()):
            if not rest:
                continue
            chunk = rest[: self.rng.randint(1, 200000)]
            bufs, n = self.sess.send(sid, chunk)
            self.write(bufs)
            self.todo[sid] = rest[n:]

    def receive(self, data: bytes) -> None:
        for ev in self.sess.receive_data(data, 0.0):
            if isinstance(ev, StreamData):
                self.got[ev.sid] += ev.data
                self.backlog[ev.sid] += len(ev.data)
            elif isinstance(ev, StreamOpened):
                self.opened.append(ev.sid)
            elif isinstance(ev, StreamEnded):
                self.ended.add(ev.sid)

    def consume_some(self) -> None:
        # A slow reader: only part of the backlog is taken each round, so v2 windows matter.
        for sid, n in self.backlog.items():
            if n:
                k = self.rng.randint(1, n)
                self.backlog[sid] -= k
                upd = self.sess.consumed(sid, k)
                self.out += upd


def transfer(side: Side, peer: Side, rng: random.Random) -> None:
    wire = bytes(side.out)
    side.out.clear()
    pos = 0
    while pos < len(wire):
        step = rng.choice([1, 7, 100, 5000, 70000, 300000])
        peer.receive(wire[pos : pos + step])
        pos += step


@pytest.mark.parametrize("version", [1, 2])
def test_back_to_back_sessions_move_5mb_both_ways(version: int) -> None:
    rng = random.Random(version)
    cfg = SmuxConfig(version=version, max_stream_buffer=65536 if version == 1 else MIB)
    a = Side(SmuxSession(cfg, client=True, now=0.0), rng)
    b = Side(SmuxSession(cfg, client=False, now=0.0), rng)
    payload_ab: dict[int, bytes] = {}
    payload_ba: dict[int, bytes] = {}
    for _ in range(4):
        sid, syn = a.sess.open_stream()
        a.out += syn
        payload_ab[sid] = rng.randbytes(rng.randint(650_000, 800_000))
        payload_ba[sid] = rng.randbytes(rng.randint(650_000, 800_000))
        a.todo[sid] = memoryview(payload_ab[sid])
    transfer(a, b, rng)
    assert b.opened == list(payload_ab)
    for sid in b.opened:
        b.todo[sid] = memoryview(payload_ba[sid])
    assert sum(map(len, payload_ab.values())) + sum(map(len, payload_ba.values())) > 5_000_000
    for _ in range(10_000):
        for side, peer in ((a, b), (b, a)):
            side.pump_sends()
            side.consume_some()
            transfer(side, peer, rng)
        done_ab = all(len(b.got[s]) == len(p) for s, p in payload_ab.items())
        done_ba = all(len(a.got[s]) == len(p) for s, p in payload_ba.items())
        if done_ab and done_ba:
            break
    else:
        pytest.fail("transfer stalled")
    assert {s: bytes(g) for s, g in b.got.items()} == payload_ab
    assert {s: bytes(g) for s, g in a.got.items()} == payload_ba
    for sid in payload_ab:
        a.out += a.sess.close_stream(sid)
    transfer(a, b, rng)
    assert b.ended == set(payload_ab)
    for sid in payload_ab:
        b.out += b.sess.close_stream(sid)
    transfer(b, a, rng)
    assert a.ended == set()  # a had forgotten them: a FIN for an unknown stream is ignored
    assert not a.sess.stream_ids and not b.sess.stream_ids
    assert a.sess.unread_total == 0 and b.sess.unread_total == 0


def psh(version: int, sid: int, n: int) -> bytes:
    """``n`` payload bytes for ``sid`` in as many PSH frames as needed."""
    sizes = [min(32768, n - off) for off in range(0, n, 32768)]
    return b"".join(encode_frame(version, PSH, sid, bytes(k)) for k in sizes)


def test_v2_data_past_the_advertised_window_fails_the_session() -> None:
    s = session(2, max_stream_buffer=65536)
    s.receive_data(encode_frame(2, SYN, 3), 0)
    s.receive_data(psh(2, 3, INITIAL_PEER_WINDOW), 0)  # exactly allowed
    assert s.consumed(3, 1000)  # UPD: consumed 1000, window 65536
    s.receive_data(encode_frame(2, PSH, 3, bytes(1000)), 0)  # back to the initial window
    with pytest.raises(SmuxError, match="overran the receive window"):
        s.receive_data(encode_frame(2, PSH, 3, b"x"), 0)
    # a PSH split over two reads is checked as its pieces arrive
    t = session(2, max_stream_buffer=65536)
    frame = encode_frame(2, SYN, 3) + psh(2, 3, INITIAL_PEER_WINDOW) + psh(2, 3, 10)
    t.receive_data(frame[:-10], 0)  # the last header, no payload yet
    with pytest.raises(SmuxError, match="overran"):
        t.receive_data(frame[-10:], 0)
    # v1 has no window: the same bytes are fine
    v1 = session(1)
    v1.receive_data(encode_frame(1, SYN, 3) + psh(1, 3, 2 * MIB), 0)
    assert v1.unread(3) == 2 * MIB


def test_frame_budget_stops_and_the_rest_resumes() -> None:
    s = SmuxSession(SmuxConfig(version=1), client=False, now=0, frames_per_turn=3)
    wire = b"".join(encode_header(1, SYN, 0, 2 * i + 1) for i in range(8))
    wire += encode_frame(1, PSH, 1, b"hi")
    got: list[SmuxEvent] = []
    rest = memoryview(wire)
    turns = 0
    while rest:
        got += s.receive_data(rest, 0)
        turns += 1
        at = s.stopped_at
        rest = rest[at:] if at >= 0 else rest[len(rest) :]
    assert turns == 3
    assert norm(got) == [("StreamOpened", 2 * i + 1, b"") for i in range(8)] + [("data", 1, b"hi")]
    assert s.partial_size == 0


def test_keepalive_never_kills_a_peer_while_we_are_not_reading() -> None:
    cfg = SmuxConfig(version=1, keepalive_interval=10, keepalive_timeout=30)
    s = SmuxSession(cfg, client=True, now=0)
    s.reading_paused(True, 1)
    for now in range(0, 300, 5):
        assert s.poll(now)[1] is False
    s.reading_paused(False, 300)
    assert s.poll(320)[1] is False  # a whole timeout again after resuming
    assert s.poll(331)[1] is True
