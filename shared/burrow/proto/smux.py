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
from burrow.proto.smux_receive import SmuxReceiver
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


class SmuxSession(SmuxReceiver):
    """One smux session over one connection: stream table, windows and keepalive, as data."""

    # The parser's state is slotted in SmuxReceiver.
    __slots__ = (
        "_frame_size",
        "_go_away",
        "_half_buffer",
        "_next_sid",
        "client",
        "config",
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
