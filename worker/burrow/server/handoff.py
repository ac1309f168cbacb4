"""Handoff of visitor connections between workers (docs/architecture.md, Processes: Handoff).

Each worker slot has one AF_UNIX SOCK_SEQPACKET socketpair made by the supervisor: the worker
receives on its inbox end (``spec.inbox_fd``), every other worker sends into the peer end
(``spec.outbox_fds[peer]``). The supervisor keeps both ends open, so records queued for a worker
that is being replaced wait in the kernel for its successor.

A record is ``encode_handoff(header, prefix)`` plus the visitor's fd (burrow.ipc.messages).
The sender closes its copy of the connection only after the kernel took the record; a handoff is
forwarded again only when its connector vanished meanwhile (``hops`` is capped at
MAX_HANDOFF_HOPS).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable

from burrow.common.logfmt import event
from burrow.ipc.messages import HandoffHeader, MessageError, decode_handoff, encode_handoff
from burrow.ipc.spec import WorkerSpec
from burrow.net.fdpass import FdPassError, recv_fd, send_fd, send_fd_async
from burrow.proto.errors import LocalProtocolError

log = logging.getLogger("burrow.server.handoff")

MAX_HANDOFF_HOPS = 2  # once, plus once more when the named connector vanished meanwhile
# Records taken per readable event, so a flood of handoffs cannot starve the rest of the loop.
MAX_BATCH = 64
# How long a sender waits for room in a full inbox before giving the connection up.
SEND_TIMEOUT = 2.0

OnHandoff = Callable[[HandoffHeader, bytes, socket.socket], None]


class HandoffOutbox:
    """Send ends of the other workers' inboxes."""

    def __init__(self, spec: WorkerSpec) -> None:
        self._socks: dict[int, socket.socket] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        for peer, fd in spec.outbox_fds.items():
            sock = socket.socket(fileno=fd)
            sock.setblocking(False)
            self._socks[peer] = sock
            self._locks[peer] = asyncio.Lock()

    @property
    def peers(self) -> list[int]:
        """Worker indexes this outbox can send to."""
        return sorted(self._socks)

    async def send(
        self,
        peer_index: int,
        header: HandoffHeader,
        prefix: bytes,
        sock: socket.socket,
        *,
        timeout: float = SEND_TIMEOUT,
    ) -> None:
        """Hand ``sock`` (with ``prefix``) to worker ``peer_index``; ``sock`` is closed on success.

        On any exception the caller still owns ``sock``.
        """
        if not 1 <= header.hops <= MAX_HANDOFF_HOPS:
            raise LocalProtocolError(
                f"handoff hops={header.hops}: more moves than {MAX_HANDOFF_HOPS}"
            )
        out = self._socks.get(peer_index)
        if out is None:
            raise LocalProtocolError(f"no handoff inbox for worker {peer_index}")
        record = encode_handoff(header, prefix)
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout):
            async with self._locks[peer_index]:
                await send_fd_async(loop, out, record, sock.fileno(), timeout)
        # The kernel holds its own reference now: ours can go.
        sock.close()

    def try_send(
        self, peer_index: int, header: HandoffHeader, prefix: bytes, sock: socket.socket
    ) -> bool:
        """:meth:`send` without waiting: False (``sock`` still ours) if the inbox is busy or full.

        The common case on the accept path, where a task, a lock and a timeout per connection
        would cost more than the handoff itself.
        """
        out = self._socks.get(peer_index)
        if out is None or self._locks[peer_index].locked():
            return False
        if not 1 <= header.hops <= MAX_HANDOFF_HOPS:
            raise LocalProtocolError(
                f"handoff hops={header.hops}: more moves than {MAX_HANDOFF_HOPS}"
            )
        try:
            send_fd(out, encode_handoff(header, prefix), sock.fileno())
        except BlockingIOError:
            return False
        sock.close()
        return True

    def close(self) -> None:
        """Close this worker's copies of the peers' send ends."""
        for sock in self._socks.values():
            sock.close()
        self._socks.clear()


class HandoffInbox:
    """Receives handed-off connections on ``spec.inbox_fd`` from the event loop's reader."""

    def __init__(self, spec: WorkerSpec, on_handoff: OnHandoff) -> None:
        self._fd = spec.inbox_fd
        self._on_handoff = on_handoff
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        """Start reading (a no-op for a single worker, which has no inbox)."""
        if self._fd < 0 or self._sock is not None:
            return
        self._sock = socket.socket(fileno=self._fd)
        self._sock.setblocking(False)
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._sock.fileno(), self._readable)

    def close(self) -> None:
        """Stop reading and close this process's copy of the inbox (the supervisor keeps its own)."""
        if self._sock is None:
            return
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._sock.fileno())
        self._sock.close()
        self._sock = None

    def _readable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        for _ in range(MAX_BATCH):
            try:
                data, fd = recv_fd(sock)
            except BlockingIOError:
                return
            except FdPassError as exc:
                event(log, logging.WARNING, "handoff.bad_record", error=str(exc))
                continue
            except OSError as exc:
                event(log, logging.ERROR, "handoff.inbox_failed", error=str(exc))
                self.close()
                return
            if fd is None:
                if not data:
                    # EOF: impossible while the supervisor holds the other end, so it is gone.
                    event(log, logging.WARNING, "handoff.inbox_closed")
                    self.close()
                    return
                event(
                    log, logging.WARNING, "handoff.bad_record", error="record without a descriptor"
                )
                continue
            self._deliver(data, fd)

    def _deliver(self, data: bytes, fd: int) -> None:
        try:
            header, prefix = decode_handoff(data)
        except MessageError as exc:
            socket.close(fd)
            event(log, logging.WARNING, "handoff.bad_record", error=str(exc))
            return
        try:
            conn = socket.socket(fileno=fd)
        except OSError as exc:  # not a socket: nothing we could pipe
            socket.close(fd)
            event(log, logging.WARNING, "handoff.bad_record", error=str(exc))
            return
        conn.setblocking(False)
        event(log, logging.DEBUG, "handoff.received", tunnel=header.tunnel_id, peer=header.peer)
        try:
            self._on_handoff(header, prefix, conn)
        except Exception:
            log.exception("handoff.callback_failed")
            conn.close()
