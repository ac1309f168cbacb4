"""smux session input (sans-IO): frames in ``receive_data``'s bytes become ``SmuxEvent`` s.

Payload is never copied on the way in: ``StreamData.data`` is a memoryview slice of the buffer
given to ``receive_data`` (see smux.py). ``SmuxReceiver`` is the parsing half of ``SmuxSession``
(smux.py), whose ``__init__`` sets up the state slotted here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from burrow.proto.smux_frame import (
    FIN,
    HEADER,
    HEADER_SIZE,
    NOP,
    PSH,
    SYN,
    UPD,
    UPD_BODY,
    UPD_SIZE,
    SmuxError,
    SmuxEvent,
    StreamData,
    StreamEnded,
    StreamOpened,
    StreamRefused,
    StreamWritable,
)
from burrow.proto.smux_stream import StreamState

if TYPE_CHECKING:
    from burrow.proto.smux_keepalive import Keepalive

_TAIL_MAX: Final = HEADER_SIZE + UPD_SIZE  # longest prefix we ever need to see whole


class SmuxReceiver:
    """Frame parsing, stream-limit and v2 window checks of ``SmuxSession``; sticky failure."""

    # Its state is slotted here and set up by SmuxSession.__init__ (smux.py).
    __slots__ = (
        "_budget",
        "_error",
        "_keepalive",
        "_left",
        "_max_refused",
        "_max_streams",
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
        "nops_received",
    )

    _budget: int
    _error: str | None
    _keepalive: Keepalive
    _left: int
    _max_refused: int
    _max_streams: int
    _partial: bytes
    _psh_left: int
    _psh_sid: int
    _recv_window: int
    _refused: int
    _stopped_at: int
    _streams: dict[int, StreamState]
    _unread: int
    _v2: bool
    _version: int
    nops_received: int

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
