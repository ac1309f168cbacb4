"""Fuzzing smux: events/NEED_DATA or SmuxError, never another exception; bounded memory."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from burrow.proto.need import NEED_DATA
from burrow.proto.smux import (
    FIN,
    HEADER_SIZE,
    MAX_FRAME_SIZE,
    PSH,
    REFUSALS_PER_LIMIT,
    SYN,
    Frame,
    FrameReader,
    SmuxConfig,
    SmuxError,
    SmuxSession,
    StreamData,
    StreamEnded,
    StreamOpened,
    StreamRefused,
    StreamWritable,
    encode_frame,
    encode_header,
)

FUZZ = settings(max_examples=300, deadline=None)
BOUND = HEADER_SIZE + MAX_FRAME_SIZE


def pieces(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)])]


# Headers drawn from the interesting space: valid and invalid versions/commands, small sids,
# short and huge LENGTHs, so random input does not almost always die on its first byte.
header = st.builds(
    lambda v, c, n, s: struct.pack("<BBHI", v, c, n, s),
    st.sampled_from([0, 1, 2, 3, 255]),
    st.sampled_from([0, 1, 2, 3, 4, 5, 255]),
    st.sampled_from([0, 1, 2, 8, 100, 65535]),
    st.sampled_from([0, 1, 2, 3, 5, 0xFFFFFFFF]),
)
wire = st.lists(st.one_of(header, st.binary(max_size=300)), max_size=20).map(b"".join)


@FUZZ
@given(
    data=st.one_of(st.binary(max_size=2000), wire),
    cuts=st.lists(st.integers(0, 10**6)),
    version=st.sampled_from([None, 1, 2]),
)
def test_frame_reader_never_raises_anything_else(
    data: bytes, cuts: list[int], version: int | None
) -> None:
    reader = FrameReader(version)
    try:
        for piece in pieces(data, cuts):
            reader.receive_data(piece)
            while (fr := reader.next_frame()) is not NEED_DATA:
                assert isinstance(fr, Frame) and fr.version in (1, 2)
                assert reader.version == fr.version
            assert reader.buffered < BOUND
    except SmuxError:
        pass


@FUZZ
@given(
    data=st.one_of(st.binary(max_size=2000), wire),
    cuts=st.lists(st.integers(0, 10**6)),
    version=st.sampled_from([1, 2]),
    client=st.booleans(),
)
def test_session_never_raises_anything_else(
    data: bytes, cuts: list[int], version: int, client: bool
) -> None:
    sess = SmuxSession(SmuxConfig(version=version), client=client, now=0.0)
    if client:
        sess.open_stream()  # sid 3 is ours, so UPDs and data for it are handled too
    try:
        for piece in pieces(data, cuts):
            for ev in sess.receive_data(piece, 0.0):
                assert isinstance(ev, StreamOpened | StreamData | StreamEnded | StreamWritable)
                if isinstance(ev, StreamData):
                    assert len(ev.data) > 0
            assert sess.partial_size < HEADER_SIZE + 8 < BOUND  # only a header or UPD prefix
    except SmuxError:
        return
    assert sess.unread_total == sum(sess.unread(s) for s in sess.stream_ids)


frame = st.one_of(
    st.builds(lambda s: (0, s, b""), st.sampled_from([3, 5, 7])),
    st.builds(lambda s: (1, s, b""), st.sampled_from([3, 5, 7, 9])),
    st.builds(lambda s, d: (2, s, d), st.sampled_from([3, 5, 7, 9]), st.binary(max_size=3000)),
    st.just((3, 0, b"")),
    st.builds(
        lambda s, a, b: (4, s, struct.pack("<II", a, b)),
        st.sampled_from([3, 5, 11]),
        st.integers(0, 2**32 - 1),
        st.integers(0, 2**32 - 1),
    ),
)


def flatten(events: list[object]) -> list[tuple[str, int, bytes]]:
    out: list[tuple[str, int, bytes]] = []
    for ev in events:
        if isinstance(ev, StreamData):
            if out and out[-1][:2] == ("StreamData", ev.sid):
                out[-1] = ("StreamData", ev.sid, out[-1][2] + bytes(ev.data))
                continue
            out.append(("StreamData", ev.sid, bytes(ev.data)))
        else:
            out.append((type(ev).__name__, ev.sid, b""))  # type: ignore[attr-defined]
    return out


@FUZZ
@given(
    frames=st.lists(frame, max_size=30),
    cuts=st.lists(st.integers(0, 10**6), max_size=30),
    version=st.sampled_from([1, 2]),
)
def test_valid_streams_give_the_same_events_however_split(
    frames: list[tuple[int, int, bytes]], cuts: list[int], version: int
) -> None:
    data = b"".join(encode_frame(version, c, s, d) for c, s, d in frames)
    whole = SmuxSession(SmuxConfig(version=version), client=False, now=0.0)
    split = SmuxSession(SmuxConfig(version=version), client=False, now=0.0)
    expect = flatten(list(whole.receive_data(data, 0.0)))
    got: list[object] = []
    for piece in pieces(data, cuts):
        got += [
            StreamData(e.sid, bytes(e.data)) if isinstance(e, StreamData) else e
            for e in split.receive_data(piece, 0.0)
        ]
    assert flatten(got) == expect
    assert split.partial_size == 0 and split.unread_total == whole.unread_total
    reader = FrameReader(version)
    for piece in pieces(data, cuts):
        reader.receive_data(piece)
    out = []
    while (fr := reader.next_frame()) is not NEED_DATA:
        out.append((fr.cmd, fr.sid, bytes(fr.data)))
    assert out == frames


@FUZZ
@given(
    sizes=st.lists(st.integers(0, 100_000), max_size=6),
    frame_size=st.integers(64, 65535),
    version=st.sampled_from([1, 2]),
    cuts=st.lists(st.integers(0, 10**7), max_size=20),
)
def test_send_then_receive_round_trip(
    sizes: list[int], frame_size: int, version: int, cuts: list[int]
) -> None:
    cfg = SmuxConfig(version=version, max_frame_size=frame_size)
    a = SmuxSession(cfg, client=True, now=0.0)
    b = SmuxSession(cfg, client=False, now=0.0)
    sid, syn = a.open_stream()
    wire = bytearray(syn)
    sent = bytearray()
    for n in sizes:
        data = bytes([n & 0xFF]) * n
        bufs, taken = a.send(sid, data)
        assert all(len(x) <= frame_size for x in bufs[1::2])
        wire += b"".join(bufs)
        sent += data[:taken]
    got = bytearray()
    for piece in pieces(bytes(wire), cuts):
        for ev in b.receive_data(piece, 0.0):
            if isinstance(ev, StreamData):
                got += ev.data
    assert got == sent


# -- hostile peers: the session state machine under stream floods and window violations --------
MAX_OPEN = 8
BUDGET = 5
WINDOW = 262144  # max(max_stream_buffer, INITIAL_PEER_WINDOW) for the config below


class HostilePeer(RuleBasedStateMachine):
    """A peer opening, flooding and overrunning streams against a v1 or v2 session.

    Invariants after every step: the stream table never exceeds its limit, a v2 stream never
    holds more than the advertised window unconsumed, a budgeted call stops only on a frame
    boundary, and the session fails with SmuxError (sticky) or not at all."""

    def __init__(self) -> None:
        super().__init__()
        self.s: SmuxSession | None = None
        self.version = 1
        self.failed = False
        self.refused = 0

    @initialize(version=st.sampled_from([1, 2]))
    def start(self, version: int) -> None:
        self.version = version
        cfg = SmuxConfig(version=version, max_stream_buffer=65536)
        self.s = SmuxSession(cfg, client=False, now=0, max_streams=MAX_OPEN, frames_per_turn=BUDGET)

    def feed(self, data: bytes) -> None:
        s = self.s
        assert s is not None
        rest = memoryview(data)
        turns = 0
        while rest and not self.failed:
            try:
                events = s.receive_data(rest, 0)
            except SmuxError:
                self.failed = True
                with pytest.raises(SmuxError):
                    s.receive_data(b"\x01\x04\x00\x00\x00\x00\x00\x00", 0)
                return
            turns += 1
            assert sum(1 for e in events if type(e) is not StreamData) <= BUDGET
            for ev in events:
                if type(ev) is StreamRefused:
                    self.refused += 1
                    assert ev.fin == encode_header(self.version, FIN, 0, ev.sid)
            at = s.stopped_at
            rest = rest[at:] if at >= 0 else rest[len(rest) :]
        assert turns <= len(data) // HEADER_SIZE + 2

    @rule(first=st.integers(0, 50), count=st.integers(1, 200))
    def syn_flood(self, first: int, count: int) -> None:
        v = self.version
        self.feed(b"".join(encode_header(v, SYN, 0, 2 * (first + i) + 1) for i in range(count)))

    @rule(sid=st.integers(0, 101), size=st.integers(1, 65535), times=st.integers(1, 6))
    def push(self, sid: int, size: int, times: int) -> None:
        self.feed(encode_frame(self.version, PSH, sid, bytes(size)) * times)

    @rule(sid=st.integers(0, 101))
    def fin(self, sid: int) -> None:
        self.feed(encode_header(self.version, FIN, 0, sid))

    @rule(data=st.one_of(st.binary(max_size=64), wire))
    def garbage(self, data: bytes) -> None:
        self.feed(data)

    @rule(sid=st.integers(0, 101), frac=st.floats(0, 1))
    def app_reads(self, sid: int, frac: float) -> None:
        s = self.s
        assert s is not None
        if not self.failed and s.unread(sid):
            s.consumed(sid, max(1, int(s.unread(sid) * frac)))

    @rule(sid=st.integers(0, 101))
    def app_closes(self, sid: int) -> None:
        s = self.s
        assert s is not None
        if not self.failed:
            s.close_stream(sid)

    @invariant()
    def bounded(self) -> None:
        s = self.s
        if s is None or self.failed:
            return
        assert len(s.stream_ids) <= MAX_OPEN
        assert self.refused <= MAX_OPEN * REFUSALS_PER_LIMIT
        assert s.partial_size < 16
        if self.version == 2:
            for sid in s.stream_ids:
                assert s.unread(sid) <= WINDOW
        assert s.unread_total == sum(s.unread(sid) for sid in s.stream_ids)


HostilePeer.TestCase.settings = settings(max_examples=150, stateful_step_count=30, deadline=None)
test_hostile_peer_state_machine = HostilePeer.TestCase
