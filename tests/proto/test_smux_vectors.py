"""smux frames in the captures of real gost (both dialects), split, re-encoded and replayed."""

from __future__ import annotations

import struct
from collections import defaultdict
from pathlib import Path

import pytest
from helpers.vectors import captures, load_chunks, streams

from burrow.proto.errors import LocalProtocolError
from burrow.proto.need import NEED_DATA
from burrow.proto.smux import (
    FIN,
    HEADER_SIZE,
    MAX_FRAME_SIZE,
    NOP,
    PSH,
    SYN,
    UPD,
    Frame,
    FrameReader,
    SmuxConfig,
    SmuxError,
    SmuxSession,
    StreamData,
    encode_header,
)

# smux version of each direction: c2s is written by the tunnel client, s2c by the server. The
# x* captures pair rc10 with v3.2.6 (see x_cross_dialect_rc10_vs_v326.txt): x1 = rc10 client (v1)
# against a v3.2.6 server (v2), x2 = the reverse, x1m/x2m = both forced to version 1.
CROSS = {"x1": (1, 2), "x2": (2, 1), "x1m": (1, 1), "x2m": (1, 1)}


def versions(dialect: str, path: Path) -> tuple[int, int]:
    """(c2s version, s2c version) for one capture."""
    if path.stem in CROSS:
        return CROSS[path.stem]
    v = 1 if dialect == "relay-rc10" else 2
    return v, v


def relay_len(data: bytes) -> int:
    """Length of the relay request/response at the start of ``data`` (4 + FEALEN)."""
    return 4 + struct.unpack_from(">H", data, 2)[0]


def bind_connections(path: Path) -> dict[int, dict[str, bytes]]:
    """conn -> {"c2s", "s2c": smux bytes after the relay message} for tunnel BIND connections."""
    raw = streams(path)
    out: dict[int, dict[str, bytes]] = {}
    for conn in sorted({c for c, _ in raw}):
        c2s = raw.get((conn, "c2s"), b"")
        if c2s[:2] not in (b"\x01\x02", b"\x01\x82"):
            continue
        s2c = raw.get((conn, "s2c"), b"")
        out[conn] = {
            "c2s": c2s[relay_len(c2s) :],
            "s2c": s2c[relay_len(s2c) :] if len(s2c) >= 4 else b"",
        }
    return out


def split(data: bytes, version: int | None = None) -> tuple[list[Frame], int]:
    """Frames of ``data`` and the length of the (truncated) tail left over."""
    reader = FrameReader(version)
    reader.receive_data(data)
    frames = []
    while (fr := reader.next_frame()) is not NEED_DATA:
        frames.append(fr)
    return frames, reader.buffered


def encode(frames: list[Frame]) -> bytes:
    return b"".join(
        encode_header(f.version, f.cmd, len(f.data), f.sid) + bytes(f.data) for f in frames
    )


def test_every_capture_has_a_bind_connection(vectors_dir: Path) -> None:
    found = captures(vectors_dir)
    names = {p.stem for _, p in found}
    assert {"a", "b", "c", "d"} <= names and set(CROSS) <= names
    for dialect, path in found:
        assert bind_connections(path), f"{dialect}/{path.name}: no tunnel BIND connection"


def test_frames_reencode_byte_exact(vectors_dir: Path) -> None:
    for dialect, path in captures(vectors_dir):
        name = f"{dialect}/{path.name}"
        c2s_v, s2c_v = versions(dialect, path)
        seen = {"c2s": 0, "s2c": 0}
        for conn, dirs in bind_connections(path).items():
            for direction, expect in (("c2s", c2s_v), ("s2c", s2c_v)):
                data = dirs[direction]
                frames, tail = split(data)
                where = (name, conn, direction)
                assert tail < HEADER_SIZE + MAX_FRAME_SIZE, where
                assert encode(frames) == data[: len(data) - tail], where
                assert {f.version for f in frames} <= {expect}, where
                seen[direction] += len(frames)
        assert seen["c2s"] and seen["s2c"], f"{name}: expected smux frames both ways"


def test_sessions_replay_the_captures(vectors_dir: Path) -> None:
    mismatches = 0
    for dialect, path in captures(vectors_dir):
        c2s_v, s2c_v = versions(dialect, path)
        for conn, dirs in bind_connections(path).items():
            c2s, s2c = dirs["c2s"], dirs["s2c"]
            if c2s_v == s2c_v:
                replay_pair(path, conn, c2s, s2c, c2s_v)
                continue
            # The tunnel client speaks c2s_v and receives s2c; the server the reverse.
            for version, data, client in ((c2s_v, s2c, False), (s2c_v, c2s, True)):
                if data:
                    sess = SmuxSession(SmuxConfig(version=version), client=client, now=0.0)
                    with pytest.raises(SmuxError, match="version"):
                        sess.receive_data(data, 0.0)
                    mismatches += 1
    assert mismatches >= 4  # x1 and x2, both directions


def chunks_after_relay(path: Path, conn: int, direction: str) -> list[bytes]:
    """The smux bytes of one direction, cut where the real recv() calls cut them."""
    pieces = [c.data for c in load_chunks(path) if c.conn == conn and c.direction == direction]
    skip = relay_len(b"".join(pieces))
    out = []
    for p in pieces:
        if skip >= len(p):
            skip -= len(p)
            continue
        out.append(p[skip:])
        skip = 0
    return out


def replay_pair(path: Path, conn: int, c2s: bytes, s2c: bytes, version: int) -> None:
    s2c_frames, _ = split(s2c, version)
    c2s_frames, _ = split(c2s, version)
    upd_window = {struct.unpack("<II", f.data)[1] for f in s2c_frames + c2s_frames if f.cmd == UPD}
    assert len(upd_window) <= 1
    if version == 2:
        assert upd_window == {1 << 20}  # tunnel dialect MaxStreamBuffer (spec §3.2)
    cfg = SmuxConfig(version=version, max_stream_buffer=upd_window.pop() if upd_window else 65536)

    # Tunnel client side (smux server) receives s2c as gost's recv() chunked it.
    tc = SmuxSession(cfg, client=False, now=0.0)
    events = []
    for piece in chunks_after_relay(path, conn, "s2c"):
        events += [
            (type(e).__name__, e.sid, bytes(e.data) if isinstance(e, StreamData) else b"")
            for e in tc.receive_data(piece, 0.0)
        ]
    syn = [f.sid for f in s2c_frames if f.cmd == SYN]
    assert syn == [3 + 2 * i for i in range(len(syn))]
    assert [sid for kind, sid, _ in events if kind == "StreamOpened"] == syn
    assert per_stream(events) == payloads(s2c_frames)
    assert {sid for kind, sid, _ in events if kind == "StreamEnded"} == {
        f.sid for f in s2c_frames if f.cmd == FIN
    }
    # Its UPDs (v2), sent after it read N bytes, are exactly what consumed(N) produces.
    for f in c2s_frames:
        if f.cmd == UPD:
            assert tc.consumed(f.sid, struct.unpack("<I", f.data[:4])[0]) == frame_bytes(f)

    # Server side (smux client) regenerates s2c from API calls, byte for byte...
    srv = SmuxSession(cfg, client=True, now=0.0)
    fins, upds = [], []
    for f in s2c_frames:
        if f.cmd == SYN:
            assert srv.open_stream() == (f.sid, frame_bytes(f))
        elif f.cmd == PSH:
            bufs, n = srv.send(f.sid, f.data)
            assert n == len(f.data) and b"".join(bufs) == frame_bytes(f)
        elif f.cmd == NOP:
            assert srv.ping() == frame_bytes(f)
        elif f.cmd == FIN:
            fins.append(f)
        else:
            upds.append(f)
    # ...and reads c2s before closing (a capture interleaves; FIN/UPD only make sense after).
    got = []
    for piece in chunks_after_relay(path, conn, "c2s"):
        got += [
            (type(e).__name__, e.sid, bytes(e.data) if isinstance(e, StreamData) else b"")
            for e in srv.receive_data(piece, 0.0)
        ]
    assert not [g for g in got if g[0] == "StreamOpened"]
    assert per_stream(got) == payloads(c2s_frames)
    assert {sid for kind, sid, _ in got if kind == "StreamEnded"} == {
        f.sid for f in c2s_frames if f.cmd == FIN
    }
    for f in upds:
        assert srv.consumed(f.sid, struct.unpack("<I", f.data[:4])[0]) == frame_bytes(f)
    for f in fins:
        assert srv.close_stream(f.sid) == frame_bytes(f)
    for f in fins:
        with pytest.raises(LocalProtocolError):
            srv.send(f.sid, b"x")


def frame_bytes(f: Frame) -> bytes:
    return encode_header(f.version, f.cmd, len(f.data), f.sid) + bytes(f.data)


def payloads(frames: list[Frame]) -> dict[int, bytes]:
    out: dict[int, bytes] = defaultdict(bytes)
    for f in frames:
        if f.cmd == PSH and f.data:
            out[f.sid] += bytes(f.data)
    return dict(out)


def per_stream(events: list[tuple[str, int, bytes]]) -> dict[int, bytes]:
    out: dict[int, bytes] = defaultdict(bytes)
    for kind, sid, data in events:
        if kind == "StreamData":
            out[sid] += data
    return dict(out)
