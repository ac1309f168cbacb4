"""Tunnel-client side of failover (docs/failover.md): ack new streams, beat while they wait.

The server cannot tell a frozen client from a slow target unless the client speaks. So:

- every stream the server opens is acknowledged at once with a NOP (one per connection per loop
  turn, however many SYNs the read carried); any smux peer ignores NOPs, so a gost server is
  unaffected;
- while any stream still waits for its target's first byte (dialing, or the target thinking),
  the connection sends a NOP every ``HEARTBEAT``, so a silent session means a frozen client;
- a stream the server closed before its target was reached is not forwarded at all: the server
  abandons a stream only when it has replayed it on another connector (a client resumed after
  SIGSTOP must not deliver the request a second time).
"""

from __future__ import annotations

import asyncio
import logging

from burrow.net.mux import MuxConnection
from burrow.net.mux_stream import MuxStream
from burrow.net.pipe import StreamPipe
from burrow.routing.health import HEARTBEAT

log = logging.getLogger("burrow.client.acks")


class StreamAcks:
    """Acks and heartbeats for the streams of one tunnel-client service."""

    def __init__(self, heartbeat: float = HEARTBEAT) -> None:
        self.heartbeat = heartbeat
        self._waiting: set[MuxStream] = set()
        self._ack_due: set[MuxConnection] = set()
        self._timer: asyncio.TimerHandle | None = None

    def opened(self, st: MuxStream) -> None:
        """The server opened ``st``: ack it and keep the connection beating until it replies."""
        conn = st.conn
        loop = conn.loop or asyncio.get_running_loop()
        if not self._ack_due:
            loop.call_soon(self._flush)
        self._ack_due.add(conn)
        self._waiting.add(st)
        if self._timer is None:
            self._timer = loop.call_later(self.heartbeat, self._beat)

    def replied(self, st: MuxStream) -> None:
        """The target sent its first byte on ``st`` (it now speaks for itself)."""
        self._waiting.discard(st)

    def _flush(self) -> None:
        due, self._ack_due = self._ack_due, set()
        for conn in due:
            conn.transport_write(conn.session.ping())

    def _beat(self) -> None:
        self._timer = None
        self._waiting = {st for st in self._waiting if not st.closed}
        if not self._waiting:
            return
        for conn in {st.conn for st in self._waiting}:
            conn.transport_write(conn.session.ping())
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self.heartbeat, self._beat)

    def close(self) -> None:
        """Stop beating (the service is stopping)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._waiting.clear()


class ClientPipe(StreamPipe):
    """The tunnel client's pipe: reports the target's first byte, drops abandoned streams."""

    __slots__ = ("_acks",)

    def __init__(self, stream: MuxStream, acks: StreamAcks, *, early: list[bytes]) -> None:
        self._acks: StreamAcks | None = acks
        super().__init__(stream, early=early)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        st = self.stream
        if st is None or st.closed:
            # The server gave up on this stream while we dialed (and replayed it elsewhere, or
            # its visitor left): deliver nothing, or the target could see the request twice.
            self._early = []
        super().connection_made(transport)

    def __call__(self, data: bytes) -> None:  # data_received: StreamPipe
        acks = self._acks
        if acks is not None:
            self._acks = None
            if self.stream is not None:
                acks.replied(self.stream)
        super().__call__(data)
