"""Server-side failover: a pipe that can move its visitor to another connector (docs/failover.md).

A :class:`FailoverPipe` is the pipe of one visitor connection while its stream has not yet sent a
byte back. Until then it keeps what the visitor sent (``FailoverConfig.replay`` bytes at most)
and watches the connector:

- the stream ends (FIN, or the tunnel connection drops) with no byte back: a draining or dead
  client; the visitor is moved to another connector with its bytes replayed;
- the session stays silent past the connector's bound while the stream waits (a frozen client,
  see ``burrow.routing.health``): the connector turns suspect and the visitor is moved the same
  way, the old stream abandoned with a FIN.

The first byte back commits the stream: from then on it is a plain pipe. A move prefers this
worker's connectors; to another worker's, the visitor's socket is handed over (the handoff inbox,
as for a new connection) with the replay bytes as its prefix and no relay reply (it was sent). A
connection that came by such a move is not handed on again, so two frozen workers cannot bounce
it between them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from burrow.common.logfmt import event, tunnel_ref
from burrow.config.limits import Limits
from burrow.ipc.messages import ConnectorInfo
from burrow.net.idlewatch import IdlePipe, IdleWatch
from burrow.net.mux_stream import MuxStream
from burrow.proto.errors import ProtocolError
from burrow.routing.health import Action, FailoverConfig, RetryBudget
from burrow.server.inbound import Inbound
from burrow.server.pool import LocalConnector, TunnelPool

if TYPE_CHECKING:
    from burrow.server.router import Delivery

log = logging.getLogger("burrow.failover")


def failover_config(limits: Limits) -> FailoverConfig:
    """The failover knobs of ``[burrow.limits]``."""
    return FailoverConfig(
        ack_timeout=limits.failover_ack_timeout,
        silent_timeout=limits.failover_silent_timeout,
        replay=limits.failover_replay,
    )


class Failover:
    """One worker's failover settings and the pool it moves streams within."""

    def __init__(self, cfg: FailoverConfig, pool: TunnelPool, idle: IdleWatch) -> None:
        self.cfg = cfg
        self.pool = pool
        self.idle = idle
        self.retries = 0  # streams moved to another connector (for logs and tests)
        # Set by the router: hand a visitor (reading paused) to another worker's connector.
        self.hand_off: Callable[[ConnectorInfo, Delivery, Inbound, bytes], None] | None = None

    def pipe(
        self,
        stream: MuxStream,
        conn: LocalConnector,
        d: Delivery,
        prefix: bytes,
        *,
        moved: bool = False,
    ) -> FailoverPipe:
        """The pipe for a stream just opened on ``conn`` with ``prefix`` as its first bytes.

        ``moved``: the connection came from another worker's failover; keep it in this worker."""
        p = FailoverPipe(self, stream, conn, d, prefix, local_only=moved)
        self.idle.watch(p)
        return p

    def next_connector(
        self, d: Delivery, budget: RetryBudget, local_only: bool
    ) -> LocalConnector | ConnectorInfo | None:
        """Another connector for ``d``: this worker's first, then another worker's; or None."""
        skip = set(budget.tried)
        remote: ConnectorInfo | None = None
        while budget.left:
            choice = self.pool.pick(d.tunnel_id, d.network, d.dialect, exclude=skip)
            if choice is None:
                break
            if isinstance(choice, LocalConnector):
                # The pick prefers healthy ones, so a suspect local one comes only after every
                # other worker's: then one of those is the better bet.
                if choice.suspect and remote is not None and self.hand_off and not local_only:
                    return remote
                return choice
            remote = remote or choice
            skip.add(choice.connector_id)
        return None if local_only or self.hand_off is None else remote


class FailoverPipe(IdlePipe):
    """A pipe that replays its visitor's first bytes on another connector when the first fails."""

    __slots__ = (
        "_budget",
        "_conn",
        "_d",
        "_due",
        "_ended_early",
        "_fo",
        "_heard_at",
        "_local_only",
        "_nops_at",
        "_opened_at",
        "_replay",
        "_rx_at",
        "_timer",
    )

    def __init__(
        self,
        fo: Failover,
        stream: MuxStream,
        conn: LocalConnector,
        d: Delivery,
        prefix: bytes,
        *,
        local_only: bool = False,
    ) -> None:
        super().__init__(fo.idle, stream)
        self._fo = fo
        self._local_only = local_only
        self._d = d
        self._budget = RetryBudget(fo.cfg.attempts)
        limit = fo.cfg.replay
        self._replay: bytearray | None = bytearray(prefix) if len(prefix) <= limit else None
        self._timer: asyncio.TimerHandle | None = None
        self._conn = conn
        self._opened_at = self._heard_at = self._due = 0.0
        # The stream ended before the visitor's socket was joined (a handed-over socket gets
        # its transport a moment later): move once it is here.
        self._ended_early = False
        self._rx_at = self._nops_at = 0
        self._watch(conn)

    def _watch(self, conn: LocalConnector) -> None:
        """Start watching ``conn`` for the stream just opened on it."""
        self._conn = conn
        self._budget.use(conn.connector_id.text)
        loop = conn.mux.loop or asyncio.get_running_loop()
        self._opened_at = self._heard_at = loop.time()
        self._rx_at = conn.mux.bytes_in
        self._nops_at = conn.mux.session.nops_received
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._arm(loop)

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        bound = self._conn.health.bound(self._fo.cfg)
        if bound > 0:
            self._due = loop.time() + bound / 2
            self._timer = loop.call_at(self._due, self._check)

    # -- visitor side ----------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        r = self._replay
        if r is not None:
            if len(r) + len(data) > self._fo.cfg.replay:
                self._replay = None  # too much to replay: this stream is committed
            else:
                r += data
        super().data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._commit()
        super().connection_lost(exc)

    def close(self) -> None:
        self._commit()
        super().close()

    # -- stream side -------------------------------------------------------------------------
    def stream_data(self, data: bytes | memoryview) -> None:
        if self._replay is not None or self._timer is not None:
            mux = self._conn.mux
            loop = mux.loop or asyncio.get_running_loop()
            self._conn.health.replied(
                mux.session.nops_received != self._nops_at, loop.time() - self._opened_at
            )
            self._commit()
        super().stream_data(data)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not self._ended_early:
            super().connection_made(transport)
            return
        self._ended_early = False
        self.transport = transport  # type: ignore[assignment]
        if not self._move("closed before replying") or self.transport is not None:
            # Moved to a stream here, or not moved (the old stream is closed: this closes it).
            super().connection_made(transport)
        # else handed over to another worker: the transport is gone

    def stream_ended(self) -> None:
        if self._replay is not None:
            if self.transport is None and not self._closed:
                self._ended_early = True
                return
            if self._move("closed before replying"):
                return
        self._commit()
        super().stream_ended()

    # -- failover ----------------------------------------------------------------------------
    def _commit(self) -> None:
        self._replay = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check(self) -> None:
        """Half-bound tick while the stream waits: has the session said anything since?"""
        self._timer = None
        st, conn = self.stream, self._conn
        if st is None or st.closed or self.transport is None:
            return
        mux = conn.mux
        loop = mux.loop or asyncio.get_running_loop()
        now = loop.time()
        cfg = self._fo.cfg
        lagged = now - self._due > conn.health.bound(cfg) / 4
        if mux.bytes_in != self._rx_at or mux.reading_paused or lagged:
            # Heard from (some time since the last tick; now is the safe side), or silence that
            # proves nothing: we were not reading that tunnel, or this loop itself was stalled
            # (timers run before the reads that waited meanwhile).
            self._rx_at = mux.bytes_in
            self._heard_at = now
        action = conn.health.verdict(cfg, now - self._heard_at, self._replay is not None)
        if action is not Action.WAIT:
            if conn.health.mark_suspect(mux.bytes_in):
                event(log, logging.INFO, "connector.suspect",
                      tunnel=tunnel_ref(conn.tunnel_id.text, log), connector=conn.connector_id.text,
                      silent=round(now - self._heard_at, 2), acks=conn.health.acks)  # fmt: skip
            if action is Action.RETRY and self._move("silent"):
                return
            if action is Action.SUSPECT and not conn.health.acks:
                return  # a gost client may just be slow: leave this stream alone
        self._arm(loop)

    def _move(self, why: str) -> bool:
        """Reopen the stream on another connector and replay; False when there is none."""
        replay, d = self._replay, self._d
        if replay is None or self.transport is None or not self._budget.left:
            return False
        nxt = self._fo.next_connector(d, self._budget, self._local_only)
        if nxt is None:
            return False
        if isinstance(nxt, ConnectorInfo):
            return self._hand_off(nxt, why)
        from burrow.server.router import stream_header  # the router imports this module

        old, self.stream = self.stream, None
        try:
            new = nxt.mux.open_stream(payload=stream_header(d, nxt.dialect) + bytes(replay))
        except (ConnectionError, ProtocolError):
            self.stream = old
            return False
        if old is not None:
            old.sink = None
            old.close()  # abandoned: a resumed client sees the FIN and does not dial (streams.py)
        self.attach(new)
        if not new.conn.tunnel_write_paused:
            self.resume_source()  # paused for the old tunnel, maybe
        self._fo.retries += 1
        event(log, logging.DEBUG, "stream.retried", tunnel=tunnel_ref(d.tunnel_id.text, log),
              kind=d.kind, reason=why, from_connector=self._conn.connector_id.text,
              to_connector=nxt.connector_id.text, replayed=len(replay))  # fmt: skip
        self._watch(nxt)
        return True

    def _hand_off(self, info: ConnectorInfo, why: str) -> bool:
        """Give the visitor's socket, with the replay bytes, to the worker that owns ``info``."""
        t, replay, fo = self.transport, self._replay, self._fo
        if t is None or replay is None or fo.hand_off is None:
            return False
        from burrow.server.router import NO_REPLY

        self._commit()
        old, self.stream = self.stream, None
        if old is not None:
            old.sink = None
            old.close()
        self.transport = None  # connection_lost from the detach below must touch nothing
        self._closed = True
        fo.retries += 1
        event(log, logging.DEBUG, "stream.retried", tunnel=tunnel_ref(self._d.tunnel_id.text, log),
              kind=self._d.kind, reason=why, from_connector=self._conn.connector_id.text,
              to_connector=info.connector_id, worker=info.worker)  # fmt: skip
        # The router owns the connection from here, and closes it if the handoff fails.
        fo.hand_off(info, replace(self._d, reply=NO_REPLY), Inbound(transport=t), bytes(replay))
        return True
