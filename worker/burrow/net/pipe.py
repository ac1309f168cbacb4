"""StreamPipe: one local TCP socket joined to one smux stream.

The local side is an asyncio Protocol; the stream side is a :class:`~burrow.net.mux.MuxStream`.
Bytes flow both ways without intermediate buffers: local reads become smux frames, stream
payload is written to the local transport. When either side ends, both are closed (gost pipes
the same way: smux has no half-close, docs/protocol.md, smux frames).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from burrow.net.busypoll import poke
from burrow.net.mux_stream import MuxStream

log = logging.getLogger("burrow.pipe")


class StreamPipe(asyncio.Protocol):
    """Local socket <-> smux stream. Also the stream's sink."""

    __slots__ = (
        "_closed", "_early", "_paused_local", "down", "on_close", "stream", "transport", "up",
    )  # fmt: skip

    def __init__(
        self, stream: MuxStream | None = None, *, early: list[bytes] | None = None
    ) -> None:
        self.stream = stream
        self.transport: asyncio.Transport | None = None
        self._closed = False
        self._paused_local = False
        # Bytes from the local socket into the stream and back (per batch), for the access log.
        self.up = 0
        self.down = 0
        self.on_close: Callable[[StreamPipe], None] | None = None
        # Stream payload that arrived before the local socket was connected (made on first
        # use: an empty list is 56 bytes for the life of every open stream).
        self._early = early
        if stream is not None:
            stream.sink = self

    @property
    def closed(self) -> bool:
        """Whether the local connection is gone (lost, or handed to another worker)."""
        return self._closed

    # -- local socket --------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.set_write_buffer_limits(high=256 * 1024, low=64 * 1024)  # type: ignore[attr-defined]
        # What the stream delivered while the socket was connecting goes out first, even when
        # the stream has already ended (a short reply and its FIN can beat connection_made).
        early, self._early = self._early, None
        for chunk in early or ():
            self.stream_data(chunk)
        if self.stream is None or self.stream.closed:
            transport.close()
            return
        if self.stream.conn.tunnel_write_paused:
            self.pause_source()

    def attach(self, stream: MuxStream) -> None:
        """Join a stream to an already connected local transport."""
        self.stream = stream
        stream.sink = self
        if stream.conn.tunnel_write_paused:
            self.pause_source()

    # uvloop keeps ``protocol.data_received`` for the transport's life, and a bound method is
    # 64 B per open stream: the attribute is the pipe itself, and calling the pipe handles the
    # bytes (subclasses override __call__). BENCHMARKS.md, memory per stream, fourth pass.
    @property
    def data_received(self) -> Callable[[bytes], None]:
        """The local socket's bytes go to ``self(data)``."""
        return self

    def __call__(self, data: bytes) -> None:
        """Bytes read from the local socket: into the stream."""
        poke()
        self.up += len(data)
        st = self.stream
        if st is not None:
            st.write(data)

    def eof_received(self) -> bool | None:
        return False  # no half-close across smux: close both sides

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self.transport = None
        done, self.on_close = self.on_close, None
        if done is not None:
            done(self)
        st = self.stream
        if st is not None:
            st.release()
            st.finish()

    def pause_writing(self) -> None:
        if self.stream is not None:
            self.stream.hold()

    def resume_writing(self) -> None:
        if self.stream is not None:
            self.stream.release()

    # -- StreamSink --------------------------------------------------------------------------
    def stream_data(self, data: bytes | memoryview) -> None:
        t = self.transport
        if t is None:
            if not self._closed:
                if self._early is None:
                    self._early = []
                self._early.append(bytes(data))
            return
        t.write(data)
        self._wrote(t, len(data))

    def stream_datav(self, parts: list[bytes | memoryview]) -> None:
        """Several pieces of this stream from one tunnel read: one writelines, no join."""
        t = self.transport
        if t is None:
            for part in parts:
                self.stream_data(part)
            return
        t.writelines(parts)
        self._wrote(t, sum(len(p) for p in parts))

    def _wrote(self, t: asyncio.Transport, n: int) -> None:
        self.down += n
        st = self.stream
        if st is not None:
            st.consumed(n)
            if st.held:
                # Only while backed up: smux v1 cannot slow this stream alone, so bound it.
                limit = st.conn.stream_buffer
                if limit and st.conn.v1 and t.get_write_buffer_size() > limit:
                    st.conn.sink_over_limit(st)

    def stream_ended(self) -> None:
        if self.transport is not None:
            if self.stream is not None and self.stream.overflowed:
                self.transport.abort()  # drop what the slow reader has not taken: that is the point
            else:
                self.transport.close()

    def stream_writable(self) -> None:
        pass

    def pause_source(self) -> None:
        if not self._paused_local and self.transport is not None:
            self._paused_local = True
            self.transport.pause_reading()

    def resume_source(self) -> None:
        if self._paused_local and self.transport is not None:
            if self.stream is not None and self.stream.conn.tunnel_write_paused:
                return
            self._paused_local = False
            self.transport.resume_reading()

    def close(self) -> None:
        """Close both sides."""
        if self.transport is not None:
            self.transport.close()
        if self.stream is not None:
            self.stream.close()
