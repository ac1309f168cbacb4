"""UDP visitor: a private UDP entry point reaching a tunnel by ID.

Spec: docs/protocol.md, CONNECT and UDP framing; docs/configuration.md, Metadata keys. Datagrams on
the visitor's bound socket are grouped into sessions by source address. Each session is one TCP
connection to the tunnel server carrying one CONNECT (FUDP; + Network udp in the tunnel dialect),
after which the bytes both ways are ``LEN(2, BE) | payload`` frames:

    visitor -> server   CONNECT request | frame | frame ...
    server  -> visitor  relay response (STATUS 0 = OK) | frame | frame ...

Relay dialect: the request goes out with the first datagrams glued to it (gost, nodelay=false).
Tunnel dialect: datagrams wait for the OK reply. ``keepalive=false`` ends a session as soon as
one datagram has been sent back (one request, one reply); either way a session with no traffic
for ``ttl`` seconds is closed (gost's listener janitor does the same).

The visitor socket is read raw (``add_reader``, ``recvfrom_into`` until EAGAIN into one scratch
buffer, each datagram right after its length prefix): every session's datagrams of one wake-up
leave in one write, framed back to back, with one copy and no per-datagram objects but the
source address (see ``burrow.net.udp_batch``).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable

from burrow.client.udp_session import Addr, UdpSession
from burrow.common.logfmt import event
from burrow.config.plan_types import VisitorPlan
from burrow.net.busypoll import poke
from burrow.net.udp_batch import SCRATCH, SCRATCH_BYTES, pack_prefix
from burrow.proto.udp import MAX_DATAGRAM, PREFIX_LEN

log = logging.getLogger("burrow.udp_visitor")

# Sessions (distinct sources) at once; datagrams from further new sources are dropped.
MAX_SESSIONS = 4096
# Kernel receive buffer asked for on the visitor socket: room for a burst of 64 KiB datagrams.
RECV_BUFFER_BYTES = 4 * 1024 * 1024


async def serve_udp_visitor(
    plan: VisitorPlan,
    sock: socket.socket,
    on_proto: Callable[[UdpVisitor], None] | None = None,
) -> None:
    """Serve the visitor on an inherited bound UDP socket until cancelled (then close it)."""
    try:
        if sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) < RECV_BUFFER_BYTES:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECV_BUFFER_BYTES)
    except OSError:
        pass  # nice to have: the kernel may cap it (net.core.rmem_max)
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    sock.setblocking(False)
    proto = UdpVisitor(plan, done, sock, loop)
    fd = sock.fileno()
    loop.add_reader(fd, proto.readable)
    if on_proto is not None:
        on_proto(proto)
    try:
        await done
    finally:
        loop.remove_reader(fd)
        proto.shutdown()
        sock.close()


class UdpVisitor:
    """The visitor socket: demultiplexes datagrams by source into sessions."""

    def __init__(
        self,
        plan: VisitorPlan,
        done: asyncio.Future[None],
        sock: socket.socket,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.plan = plan
        self.done = done
        self.sock = sock
        self.loop = loop
        self.sessions: dict[Addr, UdpSession] = {}
        self.target = plan.targets[0].addr
        # Longer datagrams are cut, as gost's read into a buffer of this size does; never past
        # what the 2-byte LEN field can carry.
        self.max_datagram = min(plan.read_buffer_size, MAX_DATAGRAM)
        self.dropped = 0  # datagrams dropped at this level (session cap)
        self.send_dropped = 0  # datagrams back to sources the socket refused (EAGAIN)
        self._dirty: list[UdpSession] = []  # sessions holding framed datagrams of this wake-up
        event(
            log,
            logging.INFO,
            "visitor.up",
            service=self.plan.name,
            network="udp",
            target=self.target,
        )

    def readable(self) -> None:
        """Read datagrams until EAGAIN (or the scratch buffer is full) and hand them out."""
        poke()
        sock, view, sessions = self.sock, SCRATCH, self.sessions
        limit = self.max_datagram
        last = SCRATCH_BYTES - PREFIX_LEN - limit
        recv = sock.recvfrom_into
        pos = start = 0
        run: UdpSession | None = None  # the session of the datagrams in view[start:pos]
        count = 0
        while pos <= last:
            try:
                n, addr = recv(view[pos + PREFIX_LEN :], limit)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                event(log, logging.DEBUG, "visitor.udp_error", service=self.plan.name,
                      error=str(exc))  # fmt: skip
                break
            session = sessions.get(addr)
            if session is None:
                if len(sessions) >= MAX_SESSIONS or self.done.done():
                    self.dropped += 1
                    continue  # nothing kept: the next datagram lands on the same spot
                session = UdpSession(self, addr)
                sessions[addr] = session
                session.start()
            if session is not run:
                if run is not None:
                    run.from_source(view[start:pos], count)
                start, count, run = pos, 0, session
            pack_prefix(view, pos, n)
            pos += PREFIX_LEN + n
            count += 1
        if run is not None:
            run.from_source(view[start:pos], count)
        dirty, self._dirty = self._dirty, []
        for session in dirty:
            session.flush_out()

    def mark_dirty(self, session: UdpSession) -> None:
        """``session`` buffered datagrams to write at the end of this wake-up."""
        self._dirty.append(session)

    def send_back(self, data: bytes | memoryview, addr: Addr) -> None:
        """Send a datagram from the tunnel to a source."""
        try:
            self.sock.sendto(data, addr)
        except (BlockingIOError, InterruptedError):
            self.send_dropped += 1
        except OSError as exc:
            event(log, logging.DEBUG, "visitor.udp_error", service=self.plan.name, error=str(exc))

    def forget(self, session: UdpSession) -> None:
        """Drop a closed session from the table (a later datagram starts a new one)."""
        if self.sessions.get(session.addr) is session:
            del self.sessions[session.addr]

    def shutdown(self) -> None:
        """Close every session."""
        for session in list(self.sessions.values()):
            session.close()
        self.sessions.clear()

    def apply(self, plan: VisitorPlan) -> None:
        """New sources are served with ``plan``; running sessions keep their connection."""
        self.plan = plan
        self.target = plan.targets[0].addr
        self.max_datagram = min(plan.read_buffer_size, MAX_DATAGRAM)
