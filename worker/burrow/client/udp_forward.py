"""rudp client side: one tunnel stream carried to one connected UDP socket.

Spec: docs/protocol.md, UDP framing. Every stream the server opens on a UDP connector is one
datagram "connection": its payload (after the per-stream header, which the tunnel client has already
read) is a sequence of ``LEN(2, BE) | payload`` frames. gost's rudp client writes the prefix and
the payload with two writes, so they can arrive in separate smux frames; DatagramReader
reassembles them. Each datagram the target sends back goes out as one framed write (one PSH).

Nothing here queues without a bound: datagrams that cannot be sent right away (socket not yet
connected past MAX_EARLY_DATAGRAMS, UDP send buffer backed up, tunnel write-paused) are dropped
and counted, which is what UDP would do anyway.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import cast

from burrow.common.hostport import join_host_port
from burrow.common.logfmt import event
from burrow.net.busypoll import poke
from burrow.net.idle import IdleTimer
from burrow.net.mux_stream import MuxStream
from burrow.proto.udp import DatagramReader, frame_datagram

log = logging.getLogger("burrow.udp_forward")

# gost's tunnel-mode rudp relay has no idle limit of its own; without one a stream whose peer
# forgot it would hold a socket forever.
IDLE_TIMEOUT = 60.0
# Datagrams from the stream kept while the UDP socket is being set up; the rest are dropped.
MAX_EARLY_DATAGRAMS = 128

# Bridges whose UDP endpoint is still being created: keeps the setup task referenced.
_setups: set[asyncio.Task[None]] = set()


def bridge_stream_to_udp(stream: MuxStream, host: str, port: int, early: list[bytes]) -> None:
    """Join ``stream`` to a UDP socket connected to (host, port); ``early`` = stream bytes so far."""
    bridge = UdpBridge(stream, host or "127.0.0.1", port, IDLE_TIMEOUT)
    for chunk in early:
        bridge.stream_data(chunk)
    task = asyncio.get_running_loop().create_task(
        bridge.connect(), name=f"rudp-{join_host_port(host, port)}"
    )
    _setups.add(task)
    task.add_done_callback(_setups.discard)


class UdpBridge(asyncio.DatagramProtocol):
    """Datagrams between a MuxStream (framed) and a connected UDP socket; also the stream's sink."""

    def __init__(self, stream: MuxStream, host: str, port: int, idle_timeout: float) -> None:
        self.stream = stream
        self.host = host
        self.port = port
        self.idle_timeout = idle_timeout
        self.transport: asyncio.DatagramTransport | None = None
        self.reader = DatagramReader()
        self.early: deque[bytes] = deque()
        self.sent = 0  # datagrams sent to the target
        self.received = 0  # datagrams from the target written to the stream
        self.dropped = 0  # datagrams dropped either way
        self.closed = False
        self._udp_paused = False  # the UDP socket's send buffer is backed up
        self._tunnel_paused = stream.conn.tunnel_write_paused
        self._idle = IdleTimer(idle_timeout, self._went_idle)
        stream.sink = self

    async def connect(self) -> None:
        """Create the UDP endpoint; on failure close the stream."""
        if self.closed:
            return
        loop = asyncio.get_running_loop()
        try:
            await loop.create_datagram_endpoint(lambda: self, remote_addr=(self.host, self.port))
        except (OSError, ValueError) as exc:  # ValueError: an unusable address
            event(log, logging.DEBUG, "rudp.dial_failed", target=self._target, error=str(exc))
            self.close()

    @property
    def _target(self) -> str:
        return join_host_port(self.host, self.port)

    # -- UDP side -----------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.closed:
            transport.close()
            return
        self.transport = cast(asyncio.DatagramTransport, transport)  # uvloop's is no subclass
        self._idle.start()
        early, self.early = self.early, deque()
        for datagram in early:
            self._send(datagram)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        poke()
        if self.closed:
            return
        # Write-paused tunnel: the stream would only queue it; a UDP peer copes with loss.
        if self._tunnel_paused or len(data) > 65535:
            self.dropped += 1
            return
        self.received += 1
        self._idle.touch()
        self.stream.write(frame_datagram(data))

    def error_received(self, exc: Exception) -> None:
        # ICMP errors (port unreachable) on a connected socket: the target may come up later;
        # the idle timeout ends the bridge if it never does.
        event(log, logging.DEBUG, "rudp.udp_error", target=self._target, error=str(exc))

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.close()

    def pause_writing(self) -> None:
        self._udp_paused = True

    def resume_writing(self) -> None:
        self._udp_paused = False

    def _send(self, datagram: bytes) -> None:
        t = self.transport
        if t is None:
            if len(self.early) < MAX_EARLY_DATAGRAMS:
                self.early.append(datagram)
            else:
                self.dropped += 1
            return
        if self._udp_paused:
            self.dropped += 1
            return
        self.sent += 1
        self._idle.touch()
        t.sendto(datagram)

    # -- StreamSink ---------------------------------------------------------------------------
    def stream_data(self, data: bytes | memoryview) -> None:
        if self.closed:
            return
        datagrams = self.reader.feed(data)
        # At most one partial datagram (< 64 KiB) is ever held, so consumption is reported now.
        self.stream.consumed(len(data))
        for datagram in datagrams:
            self._send(datagram)

    def stream_ended(self) -> None:
        self.close()

    def stream_writable(self) -> None:
        pass

    def pause_source(self) -> None:
        self._tunnel_paused = True

    def resume_source(self) -> None:
        self._tunnel_paused = self.stream.conn.tunnel_write_paused

    def _went_idle(self) -> None:
        if not self.closed:
            event(log, logging.DEBUG, "rudp.idle", target=self._target)
            self.close()

    def close(self) -> None:
        """Close the UDP socket and the stream (idempotent)."""
        if self.closed:
            return
        self.closed = True
        self._idle.cancel()
        self.early.clear()
        if self.transport is not None:
            self.transport.close()
        self.stream.close()
        event(
            log,
            logging.DEBUG,
            "rudp.closed",
            target=self._target,
            sent=self.sent,
            received=self.received,
            dropped=self.dropped,
        )
