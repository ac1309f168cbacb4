"""rudp client side: one tunnel stream carried to one connected UDP socket.

Spec: docs/protocol.md, UDP framing. Every stream the server opens on a UDP connector is one
datagram "connection": its payload (after the per-stream header, which the tunnel client has already
read) is a sequence of ``LEN(2, BE) | payload`` frames. gost's rudp client writes the prefix and
the payload with two writes, so they can arrive in separate smux frames; DatagramReader
reassembles them. The datagrams the target sends back are read until EAGAIN on each wake-up and
leave framed, back to back, in one stream write (smux streams are byte streams: gost's reader
takes them one LEN at a time, as it does from any other PSH split).

The UDP socket is a raw non-blocking socket watched with ``add_reader`` rather than a uvloop
datagram transport: per datagram that saves a callback, a bytes object and a transport call
each way (see ``burrow.net.udp_batch``).

Nothing here queues without a bound: datagrams that cannot be sent right away (socket not yet
connected past MAX_EARLY_DATAGRAMS, UDP send buffer full (EAGAIN), tunnel write-paused) are
dropped and counted, which is what UDP would do anyway.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import deque

from burrow.common.hostport import join_host_port
from burrow.common.logfmt import event
from burrow.net.busypoll import poke
from burrow.net.idle import IdleTimer
from burrow.net.mux_stream import MuxStream
from burrow.net.udp_batch import UdpSender, read_framed
from burrow.proto.udp import DatagramReader

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


class UdpBridge:
    """Datagrams between a MuxStream (framed) and a connected UDP socket; also the stream's sink."""

    def __init__(self, stream: MuxStream, host: str, port: int, idle_timeout: float) -> None:
        self.stream = stream
        self.host = host
        self.port = port
        self.idle_timeout = idle_timeout
        self.sock: socket.socket | None = None
        self.sender: UdpSender | None = None
        self.reader = DatagramReader()
        self.early: deque[bytes] = deque()
        self.sent = 0  # datagrams sent to the target
        self.received = 0  # datagrams from the target written to the stream
        self.dropped = 0  # datagrams dropped either way
        self.closed = False
        self._tunnel_paused = stream.conn.tunnel_write_paused
        self._idle = IdleTimer(idle_timeout, self._went_idle)
        self._loop = stream.conn.loop or asyncio.get_running_loop()
        stream.sink = self

    async def connect(self) -> None:
        """Resolve, create and connect the UDP socket; on failure close the stream."""
        if self.closed:
            return
        try:
            sock = await self._open()
        except (OSError, ValueError) as exc:  # ValueError: an unusable address
            event(log, logging.DEBUG, "rudp.dial_failed", target=self._target, error=str(exc))
            self.close()
            return
        if self.closed:
            sock.close()
            return
        self.sock = sock
        self.sender = UdpSender(sock)
        self._loop.add_reader(sock.fileno(), self._readable)
        self._idle.start()
        early, self.early = list(self.early), deque()
        if early:
            self._send_all(early)

    async def _open(self) -> socket.socket:
        infos = await self._loop.getaddrinfo(self.host, self.port, type=socket.SOCK_DGRAM)
        error: OSError = OSError(f"no address for {self._target}")
        for family, type_, proto, _, addr in infos:
            sock = socket.socket(family, type_, proto)
            try:
                sock.setblocking(False)
                sock.connect(addr)  # UDP: no packet, just the peer address
            except OSError as exc:
                sock.close()
                error = exc
                continue
            return sock
        raise error

    @property
    def _target(self) -> str:
        return join_host_port(self.host, self.port)

    # -- UDP side -----------------------------------------------------------------------------
    def _readable(self) -> None:
        poke()
        sock = self.sock
        if sock is None or self.closed:
            return
        framed, count, error = read_framed(sock)
        if error is not None:
            # ICMP errors (port unreachable) on a connected socket: the target may come up
            # later; the idle timeout ends the bridge if it never does.
            event(log, logging.DEBUG, "rudp.udp_error", target=self._target, error=str(error))
        if not count:
            return
        # Write-paused tunnel: the stream would only queue it; a UDP peer copes with loss.
        if self._tunnel_paused:
            self.dropped += count
            return
        self.received += count
        self._idle.touch()
        self.stream.write(framed)

    def _send_all(self, datagrams: list[bytes | memoryview] | list[bytes]) -> None:
        """Send to the target now; what the socket refuses (EAGAIN, ICMP error) is dropped."""
        assert self.sender is not None
        sent, error = self.sender.send(datagrams)
        if error is not None:
            event(log, logging.DEBUG, "rudp.udp_error", target=self._target, error=str(error))
        self.dropped += len(datagrams) - sent
        if sent:
            self.sent += sent
            self._idle.touch()

    # -- StreamSink ---------------------------------------------------------------------------
    def stream_data(self, data: bytes | memoryview) -> None:
        if self.closed:
            return
        datagrams = self.reader.split(data)
        # At most one partial datagram (< 64 KiB) is ever held, so consumption is reported now.
        self.stream.consumed(len(data))
        if not datagrams:
            return
        if self.sender is not None and not self.closed:
            self._send_all(datagrams)
            return
        for datagram in datagrams:  # still connecting: keep copies, up to a bound
            if len(self.early) < MAX_EARLY_DATAGRAMS:
                self.early.append(bytes(datagram))
            else:
                self.dropped += 1

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
        sock, self.sock, self.sender = self.sock, None, None
        if sock is not None:
            self._loop.remove_reader(sock.fileno())
            sock.close()
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
