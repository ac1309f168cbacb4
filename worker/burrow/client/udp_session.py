"""One UDP visitor session: a source address's TCP connection to the tunnel server.

One CONNECT (FUDP), then ``LEN(2, BE) | payload`` frames both ways (docs/protocol.md, UDP
framing); the visitor socket that feeds it and the module overview are in udp_visitor.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING, cast

from burrow.client.dial import build_connect_request, dial_host, open_connected_socket
from burrow.common.logfmt import event
from burrow.net.busypoll import poke
from burrow.net.idle import IdleTimer
from burrow.net.layered import dial
from burrow.proto.addr import join_hostport
from burrow.proto.errors import ProtocolError
from burrow.proto.need import NEED_DATA
from burrow.proto.relay import RelayReader, RelayResponse, Status, status_text
from burrow.proto.udp import PREFIX_LEN, DatagramReader, frame_header

if TYPE_CHECKING:
    from burrow.client.udp_visitor import UdpVisitor

log = logging.getLogger("burrow.udp_visitor")

# Datagrams held per session while its server connection is set up (gost: readQueueSize 128).
MAX_QUEUED_DATAGRAMS = 128
# Write buffer of a session's server connection before datagrams are dropped: room for bursts
# (~180 datagrams of 1400 bytes) while the server is not scheduled, bounded per source.
SESSION_WRITE_HIGH = 256 * 1024

Addr = tuple[str | int, ...]


class UdpSession(asyncio.Protocol):
    """One source address: one TCP connection to the server, one CONNECT, framed datagrams."""

    def __init__(self, visitor: UdpVisitor, addr: Addr) -> None:
        self.visitor = visitor
        self.addr = addr
        self.source = join_hostport(str(addr[0]), int(addr[1]))
        self.transport: asyncio.Transport | None = None
        self.queue: deque[bytes] = deque()
        self.reply = RelayReader("response")
        self.reader = DatagramReader()
        self.answered = False  # the server's OK has been read
        self.sending = False  # datagrams go straight out (request written; tunnel dialect: OK read)
        self.closed = False
        self.dropped = 0
        self._paused = False  # the server connection's write buffer is full
        self._task: asyncio.Task[None] | None = None
        self._idle = IdleTimer(visitor.plan.ttl, self._went_idle)
        self._out: list[bytes] = []  # framed datagrams waiting for the end of this wake-up
        self._loop = visitor.loop

    @property
    def _relay(self) -> bool:
        return self.visitor.plan.server.dialect == "relay"

    def start(self) -> None:
        """Dial the server in the background and arm the idle timer."""
        self._idle.start()
        self._task = self._loop.create_task(self._dial(), name=f"udp-visitor-{self.source}")

    async def _dial(self) -> None:
        plan = self.visitor.plan
        node = plan.server
        try:
            request = build_connect_request(
                node, plan.tunnel_id, self.visitor.target, udp=True, src=self.source
            )
            if node.transport.kind != "tcp":
                # tls/ws/wss: the layered dialer connects this protocol itself.
                async with asyncio.timeout(node.connect_timeout):
                    await dial(node.transport, dial_host(node.addr.host), node.addr.port,
                               lambda: self)  # fmt: skip
                sock = None
            else:
                sock = await open_connected_socket(node, node.connect_timeout)
        except (OSError, TimeoutError, ProtocolError) as exc:
            self._dial_failed(exc)
            return
        loop = asyncio.get_running_loop()
        if sock is not None:
            if self.closed:
                sock.close()
                return
            try:
                await loop.create_connection(lambda: self, sock=sock)
            except OSError as exc:
                sock.close()
                self._dial_failed(exc)
                return
        if self.transport is None or self.closed:
            return
        if self._relay:
            # Glue the request to what is queued, as gost's relay connector does.
            bufs: list[bytes] = [request]
            for datagram in self.queue:
                bufs += (frame_header(len(datagram)), datagram)
            self.queue.clear()
            self.transport.writelines(bufs)
            self.sending = True
        else:
            self.transport.write(request)

    def _dial_failed(self, exc: BaseException) -> None:
        node = self.visitor.plan.server
        event(
            log,
            logging.WARNING,
            "visitor.dial_failed",
            service=self.visitor.plan.name,
            source=self.source,
            server=str(node.addr),
            error=str(exc) or type(exc).__name__,
        )
        self.close()

    # -- source side --------------------------------------------------------------------------
    def from_source(self, framed: memoryview, count: int) -> None:
        """``count`` datagrams from this session's source, framed back to back in ``framed``
        (a view of the scratch buffer: copy what is kept)."""
        if self.closed:
            return
        self._idle.touch()
        t = self.transport
        if t is None or not self.sending:
            self._enqueue(framed)
            return
        if self._paused:
            self.dropped += count
            return
        out = self._out
        if not out:
            self.visitor.mark_dirty(self)
        out.append(bytes(framed))

    def _enqueue(self, framed: memoryview) -> None:
        queue, pos, n = self.queue, 0, len(framed)
        while pos < n:
            end = pos + PREFIX_LEN + (framed[pos] << 8 | framed[pos + 1])
            if len(queue) < MAX_QUEUED_DATAGRAMS:
                queue.append(bytes(framed[pos + PREFIX_LEN : end]))
            else:
                self.dropped += 1
            pos = end

    def flush_out(self) -> None:
        """Write the datagrams of this wake-up: one syscall, one wake-up of the server."""
        out, self._out = self._out, []
        if self.transport is not None and not self.closed and out:
            self.transport.writelines(out)

    # -- server connection (asyncio.Protocol) ------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = t = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        if self.closed:
            transport.close()
            return
        t.set_write_buffer_limits(high=SESSION_WRITE_HIGH)

    def data_received(self, data: bytes) -> None:
        poke()
        if self.closed:
            return
        if not self.answered:
            reply = self.reply
            try:
                reply.receive_data(data)
                msg = reply.next_event()
            except ProtocolError as exc:
                event(
                    log,
                    logging.WARNING,
                    "visitor.bad_reply",
                    service=self.visitor.plan.name,
                    source=self.source,
                    error=str(exc),
                )
                self.close()
                return
            if msg is NEED_DATA:
                return
            assert isinstance(msg, RelayResponse)
            if msg.status != Status.OK:
                event(
                    log,
                    logging.WARNING,
                    "visitor.refused",
                    service=self.visitor.plan.name,
                    source=self.source,
                    target=self.visitor.target,
                    status=msg.status,
                    reason=status_text(msg.status),
                )
                self.close()
                return
            self.answered = True
            self.sending = True
            data = reply.trailing()
            self.reply = RelayReader("response")  # drop the parsed message and its buffers
            self._flush_queue()
            if self.closed:
                return
        datagrams = self.reader.split(data)
        if not datagrams:
            return
        self._idle.touch()
        send_back, addr = self.visitor.send_back, self.addr
        if not self.visitor.plan.keepalive:
            send_back(datagrams[0], addr)
            self.close()  # one request, one reply (docs/protocol.md, UDP framing)
            return
        for datagram in datagrams:
            send_back(datagram, addr)

    def _flush_queue(self) -> None:
        if self.queue and self.transport is not None:
            bufs: list[bytes] = []
            for datagram in self.queue:
                bufs += (frame_header(len(datagram)), datagram)
            self.queue.clear()
            self.transport.writelines(bufs)

    def eof_received(self) -> bool | None:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.close()

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False

    # -- lifetime -----------------------------------------------------------------------------
    def _went_idle(self) -> None:
        if not self.closed:
            event(log, logging.DEBUG, "visitor.idle", source=self.source)
            self.close()

    def close(self) -> None:
        """End the session: forget it, close the server connection, stop dialing."""
        if self.closed:
            return
        self.closed = True
        self.visitor.forget(self)
        self.queue.clear()
        self._idle.cancel()
        if self.transport is not None:
            self.transport.close()
        task = self._task
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()
        event(
            log, logging.DEBUG, "visitor.session_closed", source=self.source, dropped=self.dropped
        )
