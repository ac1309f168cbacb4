"""MuxConnection: drives a sans-IO SmuxSession over one asyncio transport.

One tunnel TCP connection carries many streams. Bytes from the tunnel are parsed by
``burrow.proto.smux.SmuxSession`` into events, and each stream's payload goes straight to that
stream's *sink* (usually a local TCP socket, see ``burrow.net.pipe``). Bytes from a sink go out as
frames written with ``writelines`` (header + memoryview slice, never concatenated).

Backpressure (docs/protocol.md, smux frames; docs/security.md, Limits):
- smux v1 has no per-stream window. gost stops reading the whole tunnel when one sink cannot keep
  up (head-of-line blocking), so one slow visitor stalls every other one. With ``stream_buffer``
  set (``Limits.stream_buffer``) a slow sink's stream is buffered up to that many bytes before
  the tunnel is paused, and if that one stream keeps it paused for STALL_GRACE it alone is reset;
  with 0 the tunnel is paused at once, as gost does.
- smux v2 stops reporting consumption for the slow stream only: the peer's window for that stream
  runs out and the other streams keep flowing.
- When the tunnel transport's own write buffer is full, every sink stops reading until it drains.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Final

from burrow.common.logfmt import event
from burrow.net.busypoll import poke
from burrow.net.keepalive_wheel import wheel_for
from burrow.net.mux_stream import MAX_PENDING_PER_STREAM, MuxStream, StreamSink
from burrow.net.recv_buffer import RecvBuffer
from burrow.proto.errors import ProtocolError
from burrow.proto.smux import (
    SmuxEvent,
    SmuxSession,
    StreamData,
    StreamEnded,
    StreamOpened,
    StreamRefused,
    StreamWritable,
)

__all__ = ["MAX_PENDING_PER_STREAM", "STALL_GRACE", "MuxConnection", "MuxStream", "StreamSink"]

log = logging.getLogger("burrow.mux")

# smux v1: how long one sink past stream_buffer may keep the whole tunnel paused before its
# stream is reset. A fast consumer drains in milliseconds (plain backpressure, as gost); a
# visitor reading at a trickle would stall every other stream for minutes.
STALL_GRACE = 1.0


def _frozen(data: bytes | memoryview) -> bytes | memoryview:
    """A buffer the transport may keep a reference to: uvloop queues memoryviews uncopied."""
    if (
        type(data) is memoryview
        and type(data.obj) is not bytes
        and type(data.obj) is not RecvBuffer
    ):
        return bytes(data)
    return data


class MuxConnection(asyncio.Protocol):
    """Protocol for a tunnel connection after the relay handshake: smux in both directions."""

    # data_received also takes a memoryview of a RecvBuffer (the TLS link's decrypted read).
    takes_views: Final = True

    def __init__(
        self,
        session: SmuxSession,
        *,
        on_stream: Callable[[MuxStream], None] | None = None,
        on_closed: Callable[[MuxConnection, str], None] | None = None,
        name: str = "",
        stream_buffer: int = 0,
    ) -> None:
        """``stream_buffer``: v1 bytes one slow sink may fall behind before its stream is reset
        (0 = pause the whole tunnel instead, as gost does)."""
        self.session = session
        self.stream_buffer = stream_buffer
        self._budget_paused = False  # reading stopped to yield after frames_per_turn frames
        self.on_stream = on_stream
        self.on_closed = on_closed
        self.name = name
        self.streams: dict[int, MuxStream] = {}
        self.transport: asyncio.Transport | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.closed = False
        self.close_reason = ""
        self._paused_sinks: set[int] = set()
        self._stalls: dict[int, float] = {}  # v1 sid -> when its sink paused the tunnel
        self._tunnel_write_paused = False
        self.v1 = session.config.version == 1  # no per-stream window: see stream_buffer
        # Traffic on this tunnel connection (smux framing included): one add per read or write
        # batch, read by burrow.worker.stats for the admin endpoint; failover compares bytes_in
        # to see whether a session went silent (docs/failover.md) without a clock read per frame.
        self.bytes_in = 0
        self.bytes_out = 0
        self.streams_total = 0

    # -- asyncio.Protocol -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        # Kept for the streams: asyncio.get_running_loop() costs a getpid() syscall on 3.11.
        self.loop = asyncio.get_running_loop()
        self._arm_timer()

    def data_received(self, data: bytes | memoryview) -> None:
        poke()
        self.bytes_in += len(data)
        self._receive(data)

    def _receive(self, data: bytes | memoryview) -> None:
        session = self.session
        try:
            events = session.receive_data(data, time.monotonic())
        except ProtocolError as exc:
            event(log, logging.WARNING, "mux.protocol_error", tunnel=self.name, error=str(exc))
            self.abort(f"smux error: {exc}")
            return
        at = session.stopped_at
        if at >= 0:
            # Work budget spent: hand the loop back to everyone else before the rest.
            rest = memoryview(data)[at:]
            if not self._budget_paused:
                self._budget_paused = True
                self._set_reading(False)
            assert self.loop is not None
            self.loop.call_soon(self._continue, rest)
        elif self._budget_paused:
            self._budget_paused = False
            self._set_reading(True)
        self._dispatch(events)

    def _continue(self, rest: memoryview) -> None:
        if not self.closed:
            self._receive(rest)

    def _set_reading(self, on: bool) -> None:
        """Pause or resume reading the tunnel for one reason among the budget and slow sinks."""
        t = self.transport
        if t is None or self.closed:
            return
        if on:
            if self._budget_paused or self._paused_sinks:
                return
            t.resume_reading()
        else:
            t.pause_reading()
        self.session.reading_paused(not on, time.monotonic())

    def _dispatch(self, events: list[SmuxEvent]) -> None:
        streams = self.streams
        i, n = 0, len(events)
        while i < n:
            ev = events[i]
            i += 1
            if type(ev) is StreamData:
                sid = ev.sid
                st = streams.get(sid)
                if i < n and type(nxt := events[i]) is StreamData and nxt.sid == sid:
                    # Several frames (or pieces of frames) of one busy stream in this read:
                    # one vectored write downstream instead of a syscall each (docs/transports.md).
                    parts = [_frozen(ev.data)]
                    while i < n and type(nxt := events[i]) is StreamData and nxt.sid == sid:
                        parts.append(_frozen(nxt.data))
                        i += 1
                    if st is not None:
                        self._deliver_parts(st, parts)
                    continue
                if st is not None:
                    if st.sink is not None:
                        st.sink.stream_data(_frozen(ev.data))
                    elif st.finishing:
                        st.consumed(len(ev.data))  # nobody reads it: keep the session's count
            elif type(ev) is StreamOpened:
                self._peer_opened(ev.sid)
            elif type(ev) is StreamEnded:
                st = streams.get(ev.sid)
                if st is not None:
                    st._peer_ended()
            elif type(ev) is StreamWritable:
                st = streams.get(ev.sid)
                if st is not None:
                    st._flush_pending()
            elif type(ev) is StreamRefused:
                event(log, logging.DEBUG, "mux.stream_refused", tunnel=self.name, sid=ev.sid)
                self.transport_write(ev.fin)

    @staticmethod
    def _deliver_parts(st: MuxStream, parts: list[bytes | memoryview]) -> None:
        many = getattr(st.sink, "stream_datav", None)
        if many is not None:
            many(parts)
            return
        # Otherwise one part at a time, as the unmerged events were: no join (a copy of up to
        # a whole read), the sink may hand the stream on between parts (a header reader), and
        # the UDP bridge keeps sending a frame's datagrams as one batch (BENCHMARKS.md, UDP,
        # second pass: joined, a 256 KiB read left as one burst and cost ~17 %).
        for part in parts:
            sink = st.sink
            if sink is not None:
                sink.stream_data(part)
            elif st.finishing:
                st.consumed(len(part))  # nobody reads it: keep the session's count

    def eof_received(self) -> bool | None:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._shutdown(self.close_reason or ("connection lost" + (f": {exc}" if exc else "")))

    def pause_writing(self) -> None:
        self._tunnel_write_paused = True
        for st in list(self.streams.values()):
            if st.sink is not None:
                st.sink.pause_source()

    def resume_writing(self) -> None:
        self._tunnel_write_paused = False
        for st in list(self.streams.values()):
            if st.sink is not None and not st._pending:
                st.sink.resume_source()

    # -- streams ------------------------------------------------------------------------------
    def open_stream(self, sink: StreamSink | None = None, payload: bytes = b"") -> MuxStream:
        """Open a new outgoing stream (server side of a tunnel), its first bytes in the same write."""
        if self.closed:
            raise ConnectionError("tunnel connection closed")
        sid, syn = self.session.open_stream()
        st = MuxStream(sid, self)
        st.sink = sink
        self.streams[sid] = st
        self.streams_total += 1
        if not payload:
            self.transport_write(syn)
            return st
        # One syscall for SYN + payload frames: opening a stream is on every new connection's path.
        bufs, accepted = self.session.send(sid, payload)
        self.transport_writelines([syn, *bufs])
        if accepted < len(payload):
            st._queue(memoryview(payload)[accepted:])
        return st

    def _peer_opened(self, sid: int) -> None:
        st = MuxStream(sid, self)
        self.streams[sid] = st
        self.streams_total += 1
        if self.on_stream is None:
            # gost's server closes streams a tunnel client opens (docs/protocol.md, smux frames)
            st.close()
            if self.session.refused_stream() and not self.closed:
                event(log, logging.WARNING, "mux.stream_flood", tunnel=self.name)
                self.abort("smux: peer keeps opening streams we refuse")
            return
        self.on_stream(st)

    @property
    def reading_paused(self) -> bool:
        """Whether we stopped reading the tunnel (slow sinks or the frame budget): its silence
        then says nothing about the peer."""
        return self._budget_paused or bool(self._paused_sinks)

    @property
    def tunnel_write_paused(self) -> bool:
        return self._tunnel_write_paused

    def sink_paused(self, st: MuxStream) -> None:
        if self.v1 and not self.stream_buffer:
            self._paused_sinks.add(st.sid)
            if len(self._paused_sinks) == 1:
                self._set_reading(False)

    def sink_over_limit(self, st: MuxStream) -> None:
        """A v1 sink buffers more than stream_buffer: pause the tunnel, reset it if it stays."""
        if st.sid in self._paused_sinks or self.closed:
            return
        self._paused_sinks.add(st.sid)
        if len(self._paused_sinks) == 1:
            self._set_reading(False)
        loop = self.loop
        assert loop is not None
        had = st.sid in self._stalls
        self._stalls[st.sid] = loop.time()
        if not had:  # one timer per stream; it re-arms itself while the stall is younger
            loop.call_later(STALL_GRACE, self._stall_check, st)

    def _stall_check(self, st: MuxStream) -> None:
        since = self._stalls.get(st.sid)
        if since is None or st.closed or self.closed:
            self._stalls.pop(st.sid, None)
            return
        assert self.loop is not None
        left = since + STALL_GRACE - self.loop.time()
        if left > 0:
            self.loop.call_later(left, self._stall_check, st)
            return
        del self._stalls[st.sid]
        size = getattr(getattr(st.sink, "transport", None), "get_write_buffer_size", None)
        st.overflow(size() if size is not None else -1)

    def sink_resumed(self, st: MuxStream) -> None:
        self._stalls.pop(st.sid, None)
        if st.sid in self._paused_sinks:
            self._paused_sinks.discard(st.sid)
            if not self._paused_sinks:
                self._set_reading(True)

    # -- writing ------------------------------------------------------------------------------
    def transport_write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.bytes_out += len(data)
            self.transport.write(data)

    def transport_writelines(self, bufs: list[bytes | memoryview]) -> None:
        if self.transport is not None and not self.closed:
            self.bytes_out += sum(map(len, bufs))
            self.transport.writelines(bufs)

    # -- keepalive and shutdown ---------------------------------------------------------------
    def _arm_timer(self) -> None:
        deadline = self.session.next_deadline()
        if deadline is None or self.closed or self.loop is None:
            return
        # One timer per loop for every session (keepalive_wheel.py), not one per session.
        wheel_for(self.loop).schedule(deadline, self._tick)

    def _tick(self) -> None:
        if self.closed:
            return
        nop, dead = self.session.poll(time.monotonic())
        if dead:
            self.abort("keepalive timeout: no frame from the peer")
            return
        if nop:
            self.transport_write(nop)
        self._arm_timer()

    def abort(self, reason: str) -> None:
        """Tear the tunnel connection down now."""
        if not self.close_reason:
            self.close_reason = reason
        if self.transport is not None:
            self.transport.abort()
        self._shutdown(reason)

    def close(self, reason: str = "closed") -> None:
        """Close gracefully: flush what is buffered, then close."""
        if not self.close_reason:
            self.close_reason = reason
        if self.transport is not None:
            self.transport.close()

    def _shutdown(self, reason: str) -> None:
        if self.closed:
            return
        self.closed = True  # its wheel entry finds this and does nothing
        streams = list(self.streams.values())
        self.streams.clear()
        for st in streams:
            st.closed = True
            if st.sink is not None:
                st.sink.stream_ended()
        if self.on_closed is not None:
            self.on_closed(self, reason)
