"""MuxStream: one smux stream of a MuxConnection, and the StreamSink it delivers to.

Outbound payload is framed by the connection's SmuxSession; while the v2 window is shut it is
queued here (up to MAX_PENDING_PER_STREAM before the sink is paused). Consumption is reported back
as UPD frames unless the sink holds it back (see ``burrow.net.mux`` for the backpressure rules).
"""

from __future__ import annotations

import logging
from collections import deque
from typing import TYPE_CHECKING, Protocol

from burrow.common.logfmt import event
from burrow.proto.errors import ProtocolError

if TYPE_CHECKING:
    from burrow.net.mux import MuxConnection

log = logging.getLogger("burrow.mux")

# Pending outbound bytes per stream while the v2 window is shut; past this the sink is paused.
MAX_PENDING_PER_STREAM = 1 << 20


class StreamSink(Protocol):
    """What a stream delivers to: a local socket, or a parser waiting for a stream header."""

    def stream_data(self, data: bytes | memoryview) -> None: ...

    def stream_ended(self) -> None: ...

    def stream_writable(self) -> None: ...

    def pause_source(self) -> None: ...

    def resume_source(self) -> None: ...


class _Pending(deque[memoryview]):
    """Payload queued while the v2 window is shut, and its total length."""

    __slots__ = ("size",)

    def __init__(self) -> None:
        super().__init__()
        self.size = 0


class MuxStream:
    """One smux stream of a MuxConnection."""

    # 8 slots, 96 B per open stream: the held flag is ``_deferred is not None`` and the queued
    # length lives with the queue (BENCHMARKS.md, memory per stream, fourth pass).
    __slots__ = (
        "_deferred", "_finishing", "_pending", "closed", "conn", "overflowed", "sid", "sink",
    )  # fmt: skip

    def __init__(self, sid: int, conn: MuxConnection) -> None:
        self.sid = sid
        self.conn = conn
        self.sink: StreamSink | None = None
        # Created on first use: an empty deque is ~600 bytes, and most streams never need one.
        self._pending: _Pending | None = None
        # None, or the sink asked us to stop reporting consumption (hold): the bytes delivered
        # to it since, not yet reported as consumed.
        self._deferred: int | None = None
        self._finishing = False  # the sink ended: FIN goes out once the queue has drained
        self.closed = False
        self.overflowed = False  # reset for buffering more than stream_buffer (v1)

    def write(self, data: bytes | memoryview) -> None:
        """Send payload to the peer; buffers (and pauses the sink) while the v2 window is shut."""
        if self.closed or not data:
            return
        if self._pending:
            self._queue(memoryview(data))
            return
        conn = self.conn
        try:
            bufs, accepted = conn.session.send(self.sid, data)
        except ProtocolError:
            self.close()
            return
        if bufs:
            conn.transport_writelines(bufs)
        if accepted < len(data):
            self._queue(memoryview(data)[accepted:])

    def _queue(self, view: memoryview) -> None:
        pending = self._pending
        if pending is None:
            pending = self._pending = _Pending()
        pending.append(view if type(view.obj) is bytes else memoryview(bytes(view)))
        pending.size += len(view)
        if self.sink is not None and pending.size >= MAX_PENDING_PER_STREAM // 2:
            self.sink.pause_source()

    def _flush_pending(self) -> None:
        conn = self.conn
        pending = self._pending
        while pending and not self.closed:
            view = pending[0]
            try:
                bufs, accepted = conn.session.send(self.sid, view)
            except ProtocolError:
                self.close()
                return
            if bufs:
                conn.transport_writelines(bufs)
            pending.size -= accepted
            if accepted < len(view):
                pending[0] = view[accepted:]
                return
            pending.popleft()
        if self._finishing:
            if not pending:
                self.close()
            return
        if self.sink is not None:
            self.sink.resume_source()
            self.sink.stream_writable()

    def consumed(self, n: int) -> None:
        """The sink took ``n`` bytes; report it (v2 UPD) unless the sink is holding back."""
        if self._deferred is not None:
            self._deferred += n
            return
        upd = self.conn.session.consumed(self.sid, n)
        if upd:
            self.conn.transport_write(upd)

    @property
    def finishing(self) -> bool:
        """Whether the sink has ended and only the queued bytes and the FIN are left to send."""
        return self._finishing

    @property
    def held(self) -> bool:
        """Whether the sink said its output is backed up (see hold)."""
        return self._deferred is not None

    @property
    def pending_bytes(self) -> int:
        """Payload queued here while the v2 window is shut."""
        return 0 if self._pending is None else self._pending.size

    def overflow(self, buffered: int) -> None:
        """The sink buffers more than stream_buffer (v1): reset this stream, keep the tunnel."""
        if self.closed:
            return
        self.overflowed = True
        event(log, logging.WARNING, "mux.stream_overflow", tunnel=self.conn.name, sid=self.sid,
              buffered=buffered, limit=self.conn.stream_buffer)  # fmt: skip
        self.close()
        if self.sink is not None:
            self.sink.stream_ended()

    def hold(self) -> None:
        """The sink's own output is backed up: stop granting the peer more window."""
        if self._deferred is None:
            self._deferred = 0
            self.conn.sink_paused(self)

    def release(self) -> None:
        """The sink drained: report what it consumed meanwhile and let data flow again."""
        n = self._deferred
        if n is not None:
            self._deferred = None
            if n and not self.closed:
                self.consumed(n)
            self.conn.sink_resumed(self)

    def finish(self) -> None:
        """The sink ended cleanly: send what the v2 window still holds back, then FIN.

        The bytes queued here were already read from the local socket; dropping them would cut
        the end off a download whose reader is slower than its source (close() drops them).
        """
        if self.closed or self._finishing:
            return
        if not self._pending:
            self.close()
            return
        self._finishing = True
        self.sink = None  # nothing more is delivered; the stream stays until the queue drains
        if self._deferred is not None:
            self._deferred = None
            self.conn.sink_resumed(self)

    def close(self) -> None:
        """Close the stream: send FIN and forget it (no half-close in smux)."""
        if self.closed:
            return
        self.closed = True
        self._pending = None
        conn = self.conn
        if self._deferred is not None:
            self._deferred = None
            conn.sink_resumed(self)
        conn.streams.pop(self.sid, None)
        if not conn.closed:
            try:
                fin = conn.session.close_stream(self.sid)
            except ProtocolError:
                fin = b""
            if fin:
                conn.transport_write(fin)

    def _peer_ended(self) -> None:
        self.closed = True
        self.conn.streams.pop(self.sid, None)
        if self._deferred is not None:
            self._deferred = None
            self.conn.sink_resumed(self)
        try:
            fin = self.conn.session.close_stream(self.sid)
        except ProtocolError:
            fin = b""
        if fin and not self.conn.closed:
            self.conn.transport_write(fin)
        if self.sink is not None:
            self.sink.stream_ended()
