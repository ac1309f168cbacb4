"""smux session state machine (sans-IO), wire-identical to xtaci/smux v1.5.x, versions 1 and 2.

Spec: docs/protocol.md, smux frames (roles, frames, keepalive, flow control); settings in
docs/configuration.md, Metadata keys Burrow reads. Frame layout and the per-command DATA length rule
are in ``smux_frame``:

    VER(1) CMD(1) LENGTH(2, LE) SID(4, LE) | DATA
    UPD DATA: consumed(4, LE) window(4, LE)

Bytes in, events out (``receive_data``); calls in, bytes out (``open_stream``, ``send``,
``consumed``, ``close_stream``, ``poll``). The driver owns the socket and the clock: it passes
``now`` in and asks ``next_deadline()`` when to call ``poll()`` again.

Payload is never copied on the way in. ``StreamData.data`` is a memoryview slice of the buffer
given to ``receive_data`` and is valid only until the next ``receive_data`` call (if the caller
recycles that buffer). A PSH payload that straddles two ``receive_data`` calls is delivered as two
``StreamData`` events, one per piece, as the bytes arrive: smux streams are byte streams, so
frame boundaries carry no meaning for the reader. Only an incomplete header (or UPD body) is
kept between calls, so the carried tail is always shorter than 16 bytes.
"""

from __future__ import annotations

from typing import Final

from burrow.proto.errors import LocalProtocolError
from burrow.proto.smux_frame import (
    CMD_NAMES,
    DEFAULT_FRAME_SIZE,
    FIN,
    HEADER,
    HEADER_SIZE,
    MAX_FRAME_SIZE,
    NOP,
    PSH,
    SYN,
    UPD,
    UPD_BODY,
    UPD_FRAME,
    UPD_SIZE,
    ClosedStreamError,
    FlowControlError,
    Frame,
    FrameReader,
    SmuxConfig,
    SmuxError,
    SmuxEvent,
    StreamData,
    StreamEnded,
    StreamOpened,
    StreamRefused,
    StreamWritable,
    encode_frame,
    encode_header,
    encode_upd,
    payload_length,
)
from burrow.proto.smux_keepalive import Keepalive
from burrow.proto.smux_stream import (
    INITIAL_PEER_WINDOW,
    U32,
    UNLIMITED_WINDOW,
    StreamState,
    frame_psh,
    int32,
)

__all__ = [
    "CMD_NAMES",
    "DEFAULT_FRAME_SIZE",
    "FIN",
    "HEADER_SIZE",
    "INITIAL_PEER_WINDOW",
    "MAX_FRAME_SIZE",
    "MAX_STREAMS",
    "NOP",
    "PSH",
    "SYN",
    "UNLIMITED_WINDOW",
    "UPD",
    "ClosedStreamError",
    "FlowControlError",
    "Frame",
    "FrameReader",
    "SmuxConfig",
    "SmuxError",
    "SmuxEvent",
    "SmuxSession",
    "StreamData",
    "StreamEnded",
    "StreamOpened",
    "StreamRefused",
    "StreamWritable",
    "encode_frame",
    "encode_header",
    "encode_upd",
    "payload_length",
]

# Streams the peer may hold open at once. xtaci has no such cap (its accept backlog blocks the
# reader instead); without one a peer could grow our stream table without bound with SYNs.
MAX_STREAMS: Final = 65536
# Refused SYNs a session may send before it counts as a flood and is failed, as a multiple of
# its stream limit (a peer racing its own FINs may overshoot a little; a flood overshoots a lot).
REFUSALS_PER_LIMIT: Final = 4
_TAIL_MAX: Final = HEADER_SIZE + UPD_SIZE  # longest prefix we ever need to see whole


class SmuxSession:
    """One smux session over one connection: stream table, windows and keepalive, as data."""

    __slots__ = (
        "_budget",
        "_error",
        "_frame_size",
        "_go_away",
        "_half_buffer",
        "_keepalive",
        "_left",
        "_max_refused",
        "_max_streams",
        "_next_sid",
        "_partial",
        "_psh_left",
        "_psh_sid",
        "_recv_window",
        "_refused",
        "_stopped_at",
        "_streams",
        "_unread",
        "_v2",
        "_version",
        "client",
        "config",
        "nops_received",
    )

    def __init__(
        self,
        config: SmuxConfig,
        *,
        client: bool,
        now: float,
        max_streams: int = MAX_STREAMS,
        frames_per_turn: int = 0,
    ) -> None:
        """``max_streams``: peer streams open at once (0 = MAX_STREAMS); a SYN past it is refused
        with a FIN, and a peer that keeps trying is failed. ``frames_per_turn``: frames handled
        per receive_data call before it stops (0 = no budget); see ``stopped_at``."""
        self.config = config
        self._max_streams = max_streams or MAX_STREAMS
        self._max_refused = self._max_streams * REFUSALS_PER_LIMIT
        self._refused = 0
        self._budget = frames_per_turn or (1 << 62)
        self._stopped_at = -1
        self._left = 0
        # The most a peer that honours our v2 window can have in flight on one stream: what we
        # advertise in UPDs, or xtaci's initialPeerWindow it assumes before our first UPD.
        self._recv_window = max(config.max_stream_buffer, INITIAL_PEER_WINDOW)
        self.client = client
        self._version = config.version
        self._v2 = config.version == 2
        self._frame_size = config.max_frame_size
        self._half_buffer = config.max_stream_buffer // 2
        self._streams: dict[int, StreamState] = {}
        # xtaci: the client counts from 1 and the server from 0, adding 2 before each use.
        self._next_sid = 1 if client else 0
        self._go_away = False
        self._partial = b""  # an incomplete header or UPD frame (< 16 bytes)
        self._psh_left = 0  # payload bytes of the current PSH still to come
        self._psh_sid = 0
        self._error: str | None = None
        self._unread = 0  # delivered but not yet consumed, over all open streams
        self._keepalive = Keepalive(config, now)
        # A Burrow tunnel client acks each new stream with a NOP (docs/failover.md): the server
        # compares this count around a stream's first reply to learn whether its peer acks.
        self.nops_received = 0

    # -- inspection ---------------------------------------------------------------------------
    @property
    def version(self) -> int:
        """The smux protocol version spoken (1 or 2)."""
        return self._version

    @property
    def stream_ids(self) -> frozenset[int]:
        """Ids of every stream not yet closed by us."""
        return frozenset(self._streams)

    def is_open(self, sid: int) -> bool:
        """Whether ``sid`` is in the stream table (not closed by us; may be ended by the peer)."""
        return sid in self._streams

    def unread(self, sid: int) -> int:
        """Bytes of ``sid`` delivered but not yet reported consumed (0 if unknown)."""
        st = self._streams.get(sid)
        return 0 if st is None else st.received - st.consumed

    @property
    def unread_total(self) -> int:
        """Delivered but unconsumed bytes over all streams (xtaci's receive bucket usage)."""
        return self._unread

    @property
    def receive_buffer_full(self) -> bool:
        """True when unread data reached max_receive_buffer: a v1 driver should stop reading."""
        return self._unread >= self.config.max_receive_buffer

    @property
    def stopped_at(self) -> int:
        """After receive_data: offset in its ``data`` where the frame budget ran out, else -1.

        The bytes from there on were not looked at; feed them to receive_data again later."""
        return self._stopped_at

    @property
    def partial_size(self) -> int:
        """Bytes of an incomplete frame prefix held between receive_data calls."""
        return len(self._partial)

    # -- input --------------------------------------------------------------------------------
    def receive_data(self, data: bytes | bytearray | memoryview, now: float) -> list[SmuxEvent]:
        """Parse every frame in ``data``; SmuxError (sticky) on a bad version or command."""
        if self._error is not None:
            raise SmuxError(self._error)
        mv = memoryview(data)
        if mv.itemsize != 1 or mv.ndim != 1:
            mv = mv.cast("B")
        n = len(mv)
        events: list[SmuxEvent] = []
        self._stopped_at = -1
        self._left = self._budget
        if not n:
            return events
        self._keepalive.heard = True  # any byte from the peer proves it alive (spec §3.4)
        pos = 0
        if self._partial:
            partial = self._partial
            head = partial + mv[: _TAIL_MAX - len(partial)]
            used = self._parse(memoryview(head), 0, events)
            if used == 0:
                # Still no whole header (or UPD body): head holds all of data, as it is short.
                self._partial = head
                return events
            self._partial = b""
            pos = used - len(partial)
            if pos >= n:
                return events
        left = self._psh_left
        if left:
            take = min(n - pos, left)
            st = self._streams.get(self._psh_sid)
            if st is not None:
                st.received += take
                self._unread += take
                if self._v2 and st.received - st.consumed + st.incr > self._recv_window:
                    raise self._window_violation(self._psh_sid)
                events.append(StreamData(self._psh_sid, mv[pos : pos + take]))
            self._psh_left = left - take
            pos += take
            if pos >= n:
                return events
        pos = self._parse(mv, pos, events)
        if pos < n:
            if self._left <= 0 and n - pos >= HEADER_SIZE:
                self._stopped_at = pos
            else:
                self._partial = bytes(mv[pos:])
        return events

    def _parse(self, mv: memoryview, pos: int, events: list[SmuxEvent]) -> int:
        """Handle frames from ``pos``; returns where the first incomplete header starts."""
        n = len(mv)
        version = self._version
        streams = self._streams
        unpack = HEADER.unpack_from
        append = events.append
        v2 = self._v2
        left = self._left
        while n - pos >= HEADER_SIZE:
            if left <= 0:
                break
            left -= 1
            ver, cmd, length, sid = unpack(mv, pos)
            if ver != version:
                raise self._fail(f"smux: version {ver} frame on a version {version} session")
            if cmd == PSH:
                start = pos + HEADER_SIZE
                end = start + length
                if end > n:
                    # Deliver what is here now and the rest as it arrives.
                    self._psh_left = end - n
                    self._psh_sid = sid
                    end = n
                if end > start:
                    st = streams.get(sid)
                    if st is not None:  # data for an unknown or closed stream is dropped
                        st.received += end - start
                        self._unread += end - start
                        if v2 and st.received - st.consumed + st.incr > self._recv_window:
                            self._left = left
                            raise self._window_violation(sid)
                        append(StreamData(sid, mv[start:end]))
                pos = end
            elif cmd == NOP:
                self.nops_received += 1
                pos += HEADER_SIZE
            elif cmd == UPD:
                if n - pos < HEADER_SIZE + UPD_SIZE:
                    left += 1  # not handled yet
                    break
                st = streams.get(sid)
                if st is not None:
                    consumed, window = UPD_BODY.unpack_from(mv, pos + HEADER_SIZE)
                    if st.peer_update(consumed, window, v2):
                        append(StreamWritable(sid))
                pos += HEADER_SIZE + UPD_SIZE
            elif cmd == SYN:
                if sid not in streams:
                    if len(streams) >= self._max_streams:
                        self._refused += 1
                        if self._refused > self._max_refused:
                            self._left = left
                            raise self._fail(
                                f"smux: peer keeps opening streams past the limit of "
                                f"{self._max_streams} ({self._refused} refused)"
                            )
                        append(StreamRefused(sid, HEADER.pack(version, FIN, 0, sid)))
                    else:
                        streams[sid] = StreamState()
                        append(StreamOpened(sid))
                pos += HEADER_SIZE
            elif cmd == FIN:
                st = streams.get(sid)
                if st is not None and not st.peer_fin:
                    st.peer_fin = True
                    append(StreamEnded(sid))
                pos += HEADER_SIZE
            else:
                raise self._fail(f"smux: unknown command {cmd}")
        self._left = left
        return pos

    def refused_stream(self) -> bool:
        """Count a peer stream the driver refused itself (e.g. a server taking no streams).

        True when the peer has now been refused too often: the driver should fail the session."""
        self._refused += 1
        return self._refused > self._max_refused

    def _window_violation(self, sid: int) -> SmuxError:
        st = self._streams[sid]
        return self._fail(
            f"smux: peer overran the receive window on stream {sid} "
            f"({st.received - st.consumed + st.incr} bytes in flight, window {self._recv_window})"
        )

    def _fail(self, message: str) -> SmuxError:
        self._error = message
        self._partial = b""
        return SmuxError(message)

    # -- output -------------------------------------------------------------------------------
    def open_stream(self) -> tuple[int, bytes]:
        """Allocate the next stream id; returns it with the SYN frame to send."""
        if self._error is not None:
            raise LocalProtocolError(f"smux session failed: {self._error}")
        streams = self._streams
        while True:
            if self._go_away:
                raise LocalProtocolError("smux: stream ids exhausted, open a new session")
            sid = (self._next_sid + 2) & U32
            self._next_sid = sid
            if sid < 2:  # wrapped around, as xtaci's ErrGoAway
                self._go_away = True
                continue
            if sid not in streams:  # skip an id the peer already took with its own SYN
                break
        streams[sid] = StreamState()
        return sid, HEADER.pack(self._version, SYN, 0, sid)

    def send(self, sid: int, data: bytes | memoryview) -> tuple[list[bytes | memoryview], int]:
        """Frame as much of ``data`` as the window allows: (buffers for writelines, bytes taken)."""
        st = self._streams.get(sid)
        if st is None or st.peer_fin:
            raise ClosedStreamError(f"smux: stream {sid} is closed")
        total = len(data)
        if not total:
            return [], 0
        allowed = total
        if self._v2:
            inflight = st.inflight()
            if inflight < 0:
                raise FlowControlError(f"smux: peer consumed more than sent on stream {sid}")
            win = int32(st.peer_window) - inflight
            if win < total:
                st.blocked = True
                if win <= 0:
                    return [], 0
                allowed = win
        st.sent += allowed
        return frame_psh(self._version, sid, data, allowed, self._frame_size), allowed

    def send_window(self, sid: int) -> int:
        """Bytes ``send`` would accept now: v2 peer window minus in-flight; v1 UNLIMITED_WINDOW."""
        st = self._streams.get(sid)
        if st is None or st.peer_fin:
            raise ClosedStreamError(f"smux: stream {sid} is closed")
        if not self._v2:
            return UNLIMITED_WINDOW
        inflight = st.inflight()
        if inflight < 0:
            return 0
        return max(0, int32(st.peer_window) - inflight)

    def consumed(self, sid: int, n: int) -> bytes:
        """The app took ``n`` more bytes of ``sid``: a v2 UPD frame to send, or b""."""
        st = self._streams.get(sid)
        if st is None or n == 0:
            return b""
        if n < 0 or n > st.received - st.consumed:
            raise LocalProtocolError(
                f"smux: consumed({n}) on stream {sid} with {st.received - st.consumed} unread"
            )
        st.consumed += n
        self._unread -= n
        if not self._v2:
            return b""
        num_read = st.report_due(n, self._half_buffer)
        if num_read:
            return UPD_FRAME.pack(
                self._version, UPD, UPD_SIZE, sid, num_read, self.config.max_stream_buffer
            )
        return b""

    def close_stream(self, sid: int) -> bytes:
        """Forget ``sid`` and return its FIN frame (b"" if it is not open)."""
        st = self._streams.pop(sid, None)
        if st is None:
            return b""
        self._unread -= st.received - st.consumed  # unread data is discarded with the stream
        return HEADER.pack(self._version, FIN, 0, sid)

    def ping(self) -> bytes:
        """A NOP frame."""
        return self._keepalive.nop

    # -- keepalive (spec §3.4) ----------------------------------------------------------------
    def reading_paused(self, paused: bool, now: float) -> None:
        """The driver stopped (True) or resumed (False) reading; see Keepalive.reading_paused."""
        self._keepalive.reading_paused(paused, now)

    def poll(self, now: float) -> tuple[bytes, bool]:
        """Keepalive duties due at ``now``: (NOP frame to send or b"", peer presumed dead)."""
        return self._keepalive.poll(now, self._unread)

    def next_deadline(self) -> float | None:
        """When ``poll`` should next be called (None when keepalive is disabled)."""
        return self._keepalive.next_deadline()
