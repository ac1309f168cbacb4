"""Server-side failover: a pipe that can move its visitor to another connector (docs/failover.md).

A :class:`FailoverPipe` is the pipe of one visitor connection while its stream has not yet sent a
byte back. Until then it keeps what the visitor sent (``FailoverConfig.replay`` bytes at most)
and watches the connector:

- the stream ends (FIN, or the tunnel connection drops) with no byte back: a draining or dead
  client; the visitor is moved to another connector with its bytes replayed;
- the session stays silent past the connector's bound while the stream waits (a frozen client,
  see ``burrow.routing.health``): the connector turns suspect and the visitor is moved the same
  way, the old stream abandoned with a FIN.

The first byte back commits the stream: from then on it is a plain pipe. Moves stay within this
worker's connectors (another worker's connector would need the socket handed over mid-pipe).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from burrow.common.logfmt import event, tunnel_ref
from burrow.config.limits import Limits
from burrow.net.idlewatch import IdlePipe, IdleWatch
from burrow.net.mux_stream import MuxStream
from burrow.proto.errors import ProtocolError
from burrow.routing.health import Action, FailoverConfig, RetryBudget
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

    def pipe(
        self, stream: MuxStream, conn: LocalConnector, d: Delivery, prefix: bytes
    ) -> FailoverPipe:
        """The pipe for a stream just opened on ``conn`` with ``prefix`` as its first bytes."""
        p = FailoverPipe(self, stream, conn, d, prefix)
        self.idle.watch(p)
        return p

    def next_local(self, d: Delivery, budget: RetryBudget) -> LocalConnector | None:
        """Another connector of this worker for ``d`` (healthy first), or None."""
        skip = set(budget.tried)
        while budget.left:
            choice = self.pool.pick(d.tunnel_id, d.network, d.dialect, exclude=skip)
            if choice is None:
                return None
            if isinstance(choice, LocalConnector):
                return choice
            skip.add(choice.connector_id)  # another worker's: cannot move a live pipe there
        return None


class FailoverPipe(IdlePipe):
    """A pipe that replays its visitor's first bytes on another connector when the first fails."""

    __slots__ = (
        "_budget",
        "_conn",
        "_d",
        "_fo",
        "_heard_at",
        "_nops_at",
        "_opened_at",
        "_replay",
        "_rx_at",
        "_timer",
    )

    def __init__(
        self, fo: Failover, stream: MuxStream, conn: LocalConnector, d: Delivery, prefix: bytes
    ) -> None:
        super().__init__(fo.idle, stream)
        self._fo = fo
        self._d = d
        self._budget = RetryBudget(fo.cfg.attempts)
        limit = fo.cfg.replay
        self._replay: bytearray | None = bytearray(prefix) if len(prefix) <= limit else None
        self._timer: asyncio.TimerHandle | None = None
        self._conn = conn
        self._opened_at = self._heard_at = 0.0
        self._rx_at = self._nops_at = 0
        self._watch(conn)

    def _watch(self, conn: LocalConnector) -> None:
        """Start watching ``conn`` for the stream just opened on it."""
        self._conn = conn
        self._budget.use(conn.connector_id.text)
        loop = conn.mux.loop or asyncio.get_running_loop()
        self._opened_at = self._heard_at = loop.time()
        self._rx_at = conn.mux.rx_count
        self._nops_at = conn.mux.session.nops_received
        bound = conn.health.bound(self._fo.cfg)
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_later(bound / 2, self._check) if bound > 0 else None

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

    def stream_ended(self) -> None:
        if self._replay is not None and self._move("closed before replying"):
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
        if mux.rx_count != self._rx_at:
            self._rx_at = mux.rx_count
            self._heard_at = now  # some time since the last tick; now is the safe side
        cfg = self._fo.cfg
        action = conn.health.verdict(cfg, now - self._heard_at, self._replay is not None)
        if action is not Action.WAIT:
            if conn.health.mark_suspect(mux.rx_count):
                event(log, logging.INFO, "connector.suspect",
                      tunnel=tunnel_ref(conn.tunnel_id.text, log), connector=conn.connector_id.text,
                      silent=round(now - self._heard_at, 2), acks=conn.health.acks)  # fmt: skip
            if action is Action.RETRY and self._move("silent"):
                return
            if action is Action.SUSPECT and not conn.health.acks:
                return  # a gost client may just be slow: leave this stream alone
        self._timer = loop.call_later(conn.health.bound(cfg) / 2, self._check)

    def _move(self, why: str) -> bool:
        """Reopen the stream on another connector and replay; False when there is none."""
        replay, d = self._replay, self._d
        if replay is None or self.transport is None or not self._budget.left:
            return False
        nxt = self._fo.next_local(d, self._budget)
        if nxt is None:
            return False
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
