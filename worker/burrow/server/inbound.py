"""Accepting public-side connections without a task per connection.

The relay port and the entry point are served by ``loop.create_server``: uvloop accepts in C and
each connection starts as a :class:`Handshake` protocol that collects the first bytes (a relay
request, or an HTTP head / TLS ClientHello to sniff) from ``data_received`` under one deadline.
When the bytes are enough to decide, the handshake hands an :class:`Inbound` to the service. The
common case, a stream on a tunnel held by this worker, keeps the transport and gives it to the
pipe with ``set_protocol``: no coroutine, no second transport. The rare cases that need a plain
socket (handing the connection to another worker) take it with :meth:`Inbound.detach`.

This replaced a task per connection reading with ``sock_recv`` and then
``connect_accepted_socket``; it roughly halved the server's CPU time per new connection
(BENCHMARKS.md, "Profile").
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import uvloop

from burrow.common.logfmt import event
from burrow.config.plan_types import LISTEN_BACKLOG
from burrow.ipc.messages import MAX_HANDOFF_PREFIX
from burrow.net.busypoll import poke
from burrow.net.conncap import ConnectionCap
from burrow.net.layered import bridge_socket, is_layered
from burrow.net.peer import peer_host, peer_text
from burrow.net.rejectlog import RejectLog

if TYPE_CHECKING:
    from burrow.server.proxy_accept import ProxyGate

log = logging.getLogger("burrow.inbound")


class Inbound:
    """A public-side connection being routed: an accepted transport, or a plain socket."""

    __slots__ = ("peer", "sock", "transport")

    def __init__(
        self,
        *,
        transport: asyncio.Transport | None = None,
        sock: socket.socket | None = None,
        peer: str = "",
    ) -> None:
        self.transport = transport
        self.sock = sock
        self.peer = peer

    def send(self, data: bytes) -> None:
        """Best-effort write of a short reply (relay status, HTTP error)."""
        try:
            if self.transport is not None:
                self.transport.write(data)
            elif self.sock is not None:
                self.sock.send(data)
        except OSError:
            pass

    def close(self) -> None:
        """Close after what was written is flushed."""
        if self.transport is not None:
            self.transport.close()
        elif self.sock is not None:
            self.sock.close()

    def detach(self) -> socket.socket:
        """The connection as a non-blocking socket; the transport, if any, is dropped unread."""
        t = self.transport
        if t is None:
            assert self.sock is not None
            return self.sock
        if t.is_closing():
            raise ConnectionError("the connection closed before it could be handed over")
        if is_layered(t):
            # TLS/WebSocket state cannot travel with a descriptor: this worker keeps it.
            self.transport = None
            self.sock = bridge_socket(t)
            return self.sock
        pseudo = t.get_extra_info("socket")
        if pseudo is None:
            raise ConnectionError("the connection closed before it could be handed over")
        t.pause_reading()
        # The socket is duplicated before the transport closes its own descriptor, so the TCP
        # connection and whatever the kernel still holds unread survive.
        fd = os.dup(pseudo.fileno())
        self.transport = None
        t.abort()
        sock = socket.socket(fileno=fd)
        sock.setblocking(False)
        self.sock = sock
        return sock

    def adopt(self, protocol: asyncio.Protocol) -> bool:
        """Give an accepted transport to ``protocol`` now; False when there is none to give."""
        t = self.transport
        if t is None or t.is_closing():
            return False
        # uvloop keeps a buffered protocol's get_buffer / buffer_updated when a plain one
        # replaces it: the Handshake, its buffer and sniffer would live as long as the
        # connection (~0.4 KB per open stream and per tunnel). Passing through a protocol whose
        # methods are shared functions overwrites them; reading is paused, so nothing is read.
        t.set_protocol(_RELEASED)
        t.set_protocol(protocol)
        # Resumed first: connection_made may pause reading again (a write-paused tunnel), and
        # no data can be delivered before it runs.
        t.resume_reading()
        protocol.connection_made(t)
        return True

    async def join(self, protocol: asyncio.Protocol) -> bool:
        """Give the connection to ``protocol`` (a transport is made for a plain socket)."""
        if self.transport is not None:
            return self.adopt(protocol)
        sock = self.sock
        if sock is None:
            return False
        loop = asyncio.get_running_loop()
        if not isinstance(loop, uvloop.Loop):  # asyncio's transport uses the socket itself
            try:
                await loop.connect_accepted_socket(lambda: protocol, sock)
            except OSError:
                sock.close()
                return False
            return True
        # uvloop keeps the object it is given for the transport's life, only to close it after
        # libuv closed the descriptor: a socket.socket there is 88 B per handed-over stream (7
        # of 8 streams at 8 workers). It gets the one shared _Descriptor instead, and the
        # socket object lets go of the descriptor the transport now owns.
        closes = _DESCRIPTOR.set(sock)
        try:
            await loop.connect_accepted_socket(lambda: protocol, _DESCRIPTOR)  # type: ignore[arg-type]
        except OSError:
            if _DESCRIPTOR.closes == closes:
                # Failed before any await (uvloop could not open the descriptor): still ours.
                sock.close()
            else:
                sock.detach()  # the transport took it, and closed it on the way out
            return False
        sock.detach()
        self.sock = None
        return True


class _Descriptor:
    """What uvloop's ``connect_accepted_socket`` reads of a socket, for one call at a time.

    uvloop reads ``family``, ``type`` and ``fileno()`` before its first await, and later calls
    ``close()`` once its handle has closed the descriptor: nothing is left to do then, so one
    object serves every call. ``closes`` counts those calls: unchanged across a call that
    failed, the transport never took the descriptor (it fails before any await then).
    """

    __slots__ = ("closes", "family", "fd", "type")

    def __init__(self) -> None:
        self.fd = -1
        self.family = socket.AF_INET
        self.type = socket.SOCK_STREAM
        self.closes = 0

    def set(self, sock: socket.socket) -> int:
        """Describe ``sock`` for the next call; returns the close count before it."""
        self.fd, self.family, self.type = sock.fileno(), sock.family, sock.type
        return self.closes

    def fileno(self) -> int:
        return self.fd

    def close(self) -> None:
        self.closes += 1


_DESCRIPTOR = _Descriptor()


def _no_buffer(sizehint: int) -> memoryview:
    return _SCRATCH[:1]


def _ignore(data: object) -> None:
    pass


class _Released(asyncio.BaseProtocol):
    """A buffered protocol with no per-connection state: the step between two protocols."""

    __slots__ = ()
    get_buffer = staticmethod(_no_buffer)
    buffer_updated = staticmethod(_ignore)
    data_received = staticmethod(_ignore)


_RELEASED = _Released()


class Handshake(asyncio.BufferedProtocol):
    """First bytes of an accepted connection, until :meth:`inspect` decides (within ``timeout``).

    Subclasses implement :meth:`inspect` (called after every read, with everything so far in
    ``buf``) and :meth:`give_up` (EOF or deadline before a decision); they call :meth:`finish`
    to take the connection over.
    """

    __slots__ = (
        "buf", "cap", "done", "gate", "loop", "peer", "reject", "timeout", "timer", "transport",
    )  # fmt: skip

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        self.loop = loop
        self.timeout = timeout
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.buf = bytearray()
        self.peer = ""
        self.done = False
        self.cap: ConnectionCap | None = None
        self.reject: RejectLog | None = None
        # PROXY protocol (burrow.server.proxy_accept): set by the service, cleared once decided.
        self.gate: ProxyGate | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.peer = peer_text(transport)
        if self.cap is not None:
            why = self.cap.admit(transport, peer_host(transport))
            if why is not None:
                if self.reject is not None:
                    self.reject(logging.INFO, "inbound.refused", why, peer=self.peer)
                self._drop()
                return
        if self.timeout > 0:
            self.timer = self.loop.call_later(self.timeout, self._expired)

    # Buffered for sockets; the layers above a socket (TLS, WebSocket) and replays call
    # data_received. Not also an asyncio.Protocol: uvloop then ignores get_buffer.
    def get_buffer(self, sizehint: int) -> memoryview:
        # Never read past what a handoff record can carry: a visitor that sends its head and a
        # large body at once would otherwise leave more than MAX_HANDOFF_PREFIX bytes to hand on
        # (one 256 KiB read), and the worker holding the tunnel could not take the connection.
        room = MAX_HANDOFF_PREFIX - len(self.buf)
        return _SCRATCH[: max(1, min(room, len(_SCRATCH)))]

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(_SCRATCH[:nbytes])

    def data_received(self, data: bytes | memoryview) -> None:
        """Bytes read (or replayed by a wrapper, e.g. a TLS front); copied into ``buf``."""
        poke()
        if self.done:
            return
        self.buf += data
        try:
            if self.gate is not None and not self.gate.admit(self):
                return
            self.inspect()
        except Exception as exc:  # noqa: BLE001 - one connection must never take the worker down
            event(log, logging.WARNING, "inbound.error", peer=self.peer, error=repr(exc))
            self._drop()

    def eof_received(self) -> bool | None:
        if not self.done:
            self._stop_timer()
            self.give_up("peer closed")
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        self.done = True

    def _expired(self) -> None:
        self.timer = None
        if not self.done:
            self.give_up("timeout")

    def _stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _drop(self) -> None:
        self.done = True
        self._stop_timer()
        if self.transport is not None:
            self.transport.abort()

    def finish(self) -> Inbound:
        """Stop collecting: the connection (reading paused) now belongs to the caller."""
        self.done = True
        self._stop_timer()
        t = self.transport
        assert t is not None
        t.pause_reading()
        return Inbound(transport=t, peer=self.peer)

    def inspect(self) -> None:
        """Decide from ``buf`` or wait for more."""
        raise NotImplementedError

    def give_up(self, why: str) -> None:
        """No decision was possible: EOF or deadline."""
        raise NotImplementedError


async def serve_handshakes(
    listener: socket.socket,
    factory: Callable[[asyncio.AbstractEventLoop], Handshake],
    cap: ConnectionCap | None = None,
    reject: RejectLog | None = None,
) -> None:
    """Accept on ``listener`` with ``factory(loop)`` until cancelled; connections live on.

    ``cap`` (shared by every listener of the worker) refuses connections over the limits.
    """
    loop = asyncio.get_running_loop()

    def make() -> Handshake:
        h = factory(loop)
        h.cap, h.reject = cap, reject
        return h

    server = await loop.create_server(make, sock=listener, backlog=LISTEN_BACKLOG)
    try:
        await asyncio.Future()
    finally:
        # Only this worker's descriptor closes: the supervisor keeps the listening socket, so
        # connections queued in it are accepted by the next worker.
        server.close()


def spawn(coro: Any, name: str) -> None:
    """Run a slow-path coroutine for one connection, keeping a reference until it ends."""
    task = asyncio.get_running_loop().create_task(coro, name=name)
    _RUNNING.add(task)
    task.add_done_callback(_RUNNING.discard)


_RUNNING: set[asyncio.Task[Any]] = set()
# Every handshake of the worker reads into this one buffer and copies out at once (one event
# loop thread): no 64 KiB per connection waiting for its first bytes.
_SCRATCH = memoryview(bytearray(65536))
