"""Router: put a visitor's connection onto a tunnel, here or in the worker that holds it.

A local connector gets a new smux stream: the per-stream header (docs/protocol.md, Per-stream
header), then any bytes already read from the visitor, then the two are piped. A connector held by
another worker gets the visitor's socket itself, with those bytes and the routing decision, over the
handoff inbox; that worker does the same steps. A connection moves at most once.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable

from burrow.common.hostport import strip_port
from burrow.common.ids import TunnelId
from burrow.common.logfmt import event, tunnel_ref
from burrow.ipc.messages import ConnectorInfo, HandoffHeader
from burrow.net.idlewatch import IdleWatch
from burrow.net.pipe import StreamPipe
from burrow.proto.errors import ProtocolError
from burrow.proto.relay import Status
from burrow.routing.health import FailoverConfig
from burrow.server.access_log import ACCESS
from burrow.server.delivery import NO_REPLY, Delivery, status_reply, stream_header
from burrow.server.failover import Failover
from burrow.server.forward import Forwarder
from burrow.server.handoff import MAX_HANDOFF_HOPS, HandoffOutbox
from burrow.server.inbound import Inbound, spawn
from burrow.server.pool import LocalConnector, TunnelPool
from burrow.server.refuse import HTTP_STATUS, refuse
from burrow.server.tls_front import TLS_KIND
from burrow.worker.stats import STATS

# Entry points that terminate TLS, by service name: wrap a handed-over socket (and its
# ClientHello) so this worker terminates it (burrow.server.tls_front).
TlsHook = Callable[[Inbound, bytes], Inbound | None]

log = logging.getLogger("burrow.router")

# Re-exported for the many modules that import them from here.
__all__ = ["HTTP_STATUS", "NO_REPLY", "Delivery", "refuse", "status_reply", "stream_header"]

# Stats event names by Delivery.kind (docs/admin.md: burrow_entry_requests, ..._visitor_...).
_EVENT_PREFIX = {"entrypoint": "entry", "visitor": "visitor"}
ATTEMPTS = 3  # gost tries the pool three times (docs/protocol.md, CONNECT)


class Router:
    """Opens streams on local connectors and hands sockets to the owners of remote ones."""

    def __init__(
        self,
        pool: TunnelPool,
        outbox: HandoffOutbox | None,
        idle: IdleWatch | None = None,
        failover: FailoverConfig | None = None,
    ) -> None:
        self.pool = pool
        self.outbox = outbox
        self.idle = idle if idle is not None else IdleWatch(0)
        self.tls_hooks: dict[str, TlsHook] = {}
        # Set on a cluster node: a tunnel with no connector here goes to a node that has one.
        self.forwarder: Forwarder | None = None
        cfg = failover if failover is not None else FailoverConfig()
        self.failover = Failover(cfg, pool, self.idle) if cfg.enabled or cfg.replay else None
        if self.failover is not None:
            self.failover.hand_off = self._move_out

    def route(
        self, d: Delivery, inbound: Inbound, prefix: bytes, unavailable: Callable[[], None]
    ) -> None:
        """Route ``inbound``; calls ``unavailable`` when no connector takes it.

        A connector of this worker is attached right here, synchronously; only a handoff to
        another worker (or a retry) goes through a task.
        """
        choice = self.pool.pick(d.tunnel_id, d.network, d.dialect, exclude=set())
        if choice is None:
            fw = self.forwarder
            if fw is not None and not d.forwarded and fw.reachable(d):
                spawn(fw.forward(d, inbound, prefix, unavailable, ATTEMPTS), "forward")
            else:
                if fw is not None:
                    fw.missed(d)
                unavailable()
            return
        if isinstance(choice, LocalConnector):
            pipe = self._open(choice, d, inbound, prefix)
            if pipe is not None:
                if not inbound.adopt(pipe):
                    pipe.close()
                    inbound.close()
                return
            choice = None  # that tunnel connection just closed: let deliver() pick again
        elif self._try_handoff_now(choice, d, inbound, prefix):
            return
        spawn(self._route_slowly(d, inbound, prefix, unavailable, choice), "route")

    def _try_handoff_now(
        self, info: ConnectorInfo, d: Delivery, inbound: Inbound, prefix: bytes
    ) -> bool:
        """Hand the connection over without waiting, when the peer's inbox has room."""
        outbox = self.outbox
        if outbox is None or info.worker not in outbox.peers:
            return False
        try:
            sent = outbox.try_send(info.worker, _handoff_header(info, d), prefix, inbound.detach())
        except (OSError, ProtocolError) as exc:
            event(log, logging.WARNING, "handoff.failed", worker=info.worker, error=str(exc))
            return False
        if sent:
            STATS.count(d.service, "handoff_out")
        return sent

    async def _route_slowly(
        self,
        d: Delivery,
        inbound: Inbound,
        prefix: bytes,
        unavailable: Callable[[], None],
        first: LocalConnector | ConnectorInfo | None,
    ) -> None:
        done, tries = await self._deliver(d, inbound, prefix, first)
        if done:
            return
        fw = self.forwarder
        if fw is not None and not d.forwarded and tries < ATTEMPTS and fw.reachable(d):
            # The 3-attempt rule spans nodes: what this node's connectors left of it.
            await fw.forward(d, inbound, prefix, unavailable, ATTEMPTS - tries)
            return
        unavailable()

    async def deliver(
        self,
        d: Delivery,
        inbound: Inbound,
        prefix: bytes,
        *,
        first: LocalConnector | ConnectorInfo | None = None,
    ) -> bool:
        """Route ``inbound``; True when it now belongs to a stream or another worker."""
        return (await self._deliver(d, inbound, prefix, first))[0]

    async def _deliver(
        self,
        d: Delivery,
        inbound: Inbound,
        prefix: bytes,
        first: LocalConnector | ConnectorInfo | None,
    ) -> tuple[bool, int]:
        """``deliver``, also saying how many of the ATTEMPTS it used."""
        tried: set[str] = set()
        choice: LocalConnector | ConnectorInfo | None = first
        for n in range(ATTEMPTS):
            if choice is None:
                choice = self.pool.pick(d.tunnel_id, d.network, d.dialect, exclude=tried)
                if choice is None:
                    return False, n
            if isinstance(choice, LocalConnector):
                tried.add(choice.connector_id.text)
                if await self.attach(choice, d, inbound, prefix):
                    return True, n + 1
            else:
                tried.add(choice.connector_id)
                if await self._handoff(choice, d, inbound, prefix):
                    return True, n + 1
            choice = None
        return False, ATTEMPTS

    async def _handoff(
        self, info: ConnectorInfo, d: Delivery, inbound: Inbound, prefix: bytes, hops: int = 1
    ) -> bool:
        if self.outbox is None or info.worker not in self.outbox.peers:
            return False
        header = _handoff_header(info, d, hops)
        try:
            await self.outbox.send(info.worker, header, prefix, inbound.detach())
        except (OSError, TimeoutError, ProtocolError) as exc:
            event(log, logging.WARNING, "handoff.failed", worker=info.worker, error=str(exc))
            return False
        STATS.count(d.service, "handoff_out")
        return True

    def _open(
        self,
        conn: LocalConnector,
        d: Delivery,
        inbound: Inbound,
        prefix: bytes,
        moved: bool = False,
    ) -> StreamPipe | None:
        """Open a stream whose SYN, header and ``prefix`` leave in one write; reply to a visitor."""
        header = stream_header(d, conn.dialect)
        if d.kind == TLS_KIND:
            prefix = b""  # the ClientHello: this worker's TLS front consumes it, not the tunnel
        try:
            stream = conn.mux.open_stream(payload=header + prefix if prefix else header)
        except (ConnectionError, ProtocolError):
            return None
        fo = self.failover
        if fo is not None:
            pipe: StreamPipe = fo.pipe(stream, conn, d, prefix, moved=moved)
        else:
            pipe = self.idle.pipe(stream)
        STATS.count(d.service, _EVENT_PREFIX.get(d.kind, d.kind) + "_routed")
        if ACCESS.wants(d.service):
            pipe.up = len(prefix)  # what the sniff (or a handed-off record) already read
            pipe.on_close = _access_line(d, conn.connector_id.text)
        if d.reply != NO_REPLY:
            inbound.send(status_reply(d.reply))
        event(
            log,
            logging.DEBUG,
            "stream.open",
            kind=d.kind,
            tunnel=d.tunnel_id.text,
            connector=conn.connector_id.text,
            peer=d.peer,
            target=d.target,
        )
        return pipe

    async def attach(
        self,
        conn: LocalConnector,
        d: Delivery,
        inbound: Inbound,
        prefix: bytes,
        moved: bool = False,
    ) -> bool:
        """Open a stream on ``conn`` and pipe ``inbound`` through it; False if the tunnel is gone."""
        pipe = self._open(conn, d, inbound, prefix, moved)
        if pipe is None:
            return False
        if not await inbound.join(pipe):
            pipe.close()
            inbound.close()
        return True

    def adopt(self, header: HandoffHeader, prefix: bytes, sock: socket.socket) -> None:
        """A socket handed over by another worker: attach it to the named local connector."""
        STATS.count(header.service, "handoff_in")
        spawn(self._adopt(header, prefix, sock), f"adopt-{header.connector_id}")

    async def _adopt(self, header: HandoffHeader, prefix: bytes, sock: socket.socket) -> None:
        inbound = Inbound(sock=sock, peer=header.peer)
        try:
            await self._adopt_inbound(header, prefix, inbound)
        except Exception as exc:  # noqa: BLE001 - a task must not die with a traceback
            event(log, logging.WARNING, "handoff.error", peer=header.peer, error=repr(exc))
            refuse(inbound, header.kind, prefix, Status.SERVICE_UNAVAILABLE)

    async def _adopt_inbound(self, header: HandoffHeader, prefix: bytes, inbound: Inbound) -> None:
        sock = inbound.sock
        assert sock is not None
        sock.setblocking(False)
        if header.kind == TLS_KIND:
            hook = self.tls_hooks.get(header.service)
            wrapped = hook(inbound, prefix) if hook is not None else None
            if wrapped is None:
                inbound.close()
                return
            inbound = wrapped
        d = Delivery(
            kind=header.kind,
            service=header.service,
            tunnel_id=TunnelId.parse(header.tunnel_id),
            network=header.network,
            dialect="",
            peer=header.peer,
            target=header.target,
            reply=header.reply,
        )
        conn = self.pool.find_local(header.connector_id)
        moved = header.hops >= MAX_HANDOFF_HOPS  # no further handoff (failover moves use this)
        if conn is not None and conn.suspect:
            conn = self._instead_of_suspect(conn, d)
            if conn.suspect and not moved:
                # Frozen here, maybe healthy elsewhere (other workers cannot see our suspects).
                other = self.pool.pick(d.tunnel_id, d.network, d.dialect, {conn.connector_id.text})
                if isinstance(other, ConnectorInfo) and await self._handoff(
                    other, d, inbound, prefix, header.hops + 1
                ):
                    return
        if conn is None:
            # The owner changed hands meanwhile: use any local connector of the tunnel, never
            # bounce again.
            for c in self.pool.local.get(d.tunnel_id, ()):
                if c.usable and c.network == d.network:
                    conn = c
                    break
        if conn is not None and await self.attach(conn, d, inbound, prefix, moved):
            return
        if conn is None and header.hops < MAX_HANDOFF_HOPS:
            # Our connector vanished, but another worker may still hold one: move once more.
            other = self.pool.pick(d.tunnel_id, d.network, d.dialect, {header.connector_id})
            if isinstance(other, ConnectorInfo) and await self._handoff(
                other, d, inbound, prefix, header.hops + 1
            ):
                return
        event(
            log,
            logging.INFO,
            "handoff.orphan",
            tunnel=tunnel_ref(header.tunnel_id, log),
            connector=header.connector_id,
        )
        STATS.count(header.service, _EVENT_PREFIX.get(header.kind, header.kind) + "_503")
        refuse(inbound, header.kind, prefix, Status.SERVICE_UNAVAILABLE)

    def _instead_of_suspect(self, conn: LocalConnector, d: Delivery) -> LocalConnector:
        """A healthy local connector of the tunnel instead of suspect ``conn`` (failover)."""
        for c in self.pool.local.get(d.tunnel_id, ()):
            if c is not conn and c.usable and c.network == d.network and not c.suspect:
                return c
        return conn

    def _move_out(self, info: ConnectorInfo, d: Delivery, inbound: Inbound, prefix: bytes) -> None:
        """Failover: hand a visitor being replayed to another worker's connector (or close it)."""
        outbox = self.outbox
        if outbox is None or info.worker not in outbox.peers:
            inbound.close()
            return
        try:
            header = _handoff_header(info, d, MAX_HANDOFF_HOPS)
            if outbox.try_send(info.worker, header, prefix, inbound.detach()):
                return
        except (OSError, ProtocolError) as exc:
            event(log, logging.WARNING, "handoff.failed", worker=info.worker, error=str(exc))
            inbound.close()
            return
        spawn(self._move_slowly(info, d, inbound, prefix), "failover-handoff")

    async def _move_slowly(
        self, info: ConnectorInfo, d: Delivery, inbound: Inbound, prefix: bytes
    ) -> None:
        if not await self._handoff(info, d, inbound, prefix, MAX_HANDOFF_HOPS):
            inbound.close()


def _access_line(d: Delivery, connector: str) -> Callable[[StreamPipe], None]:
    """The access log's callback for a pipe that closes (burrow.server.access_log)."""
    start = time.monotonic()

    def finished(pipe: StreamPipe) -> None:
        ACCESS.finished(
            service=d.service, kind=d.kind, tunnel=d.tunnel_id.text,
            host=strip_port(d.target), source=d.peer, target=d.target,
            connector=connector, up=pipe.up, down=pipe.down,
            duration=time.monotonic() - start, outcome="ok",
        )  # fmt: skip

    return finished


def _handoff_header(info: ConnectorInfo, d: Delivery, hops: int = 1) -> HandoffHeader:
    return HandoffHeader(
        kind=d.kind,
        service=d.service,
        tunnel_id=d.tunnel_id.text,
        connector_id=info.connector_id,
        network=d.network,
        peer=d.peer,
        target=d.target,
        reply=d.reply,
        hops=hops,
    )
