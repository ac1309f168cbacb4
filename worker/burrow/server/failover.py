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


class _Watch:
    """What a stream needs until its first byte back: replay bytes, retry budget, timer.

    Dropped at the commit, so an open stream that has replied keeps none of it (the
    Delivery, the replay copy, the budget, the stamps: ~0.4 KB a stream, BENCHMARKS.md Scale).
    """

    __slots__ = (
        "budget", "conn", "d", "due", "ended_early", "fo", "heard_at", "local_only", "nops_at",
        "opened_at", "replay", "rx_at", "timer",
    )  # fmt: skip

    def __init__(
        self, fo: Failover, conn: LocalConnector, d: Delivery, replay: bytearray | None, local: bool
    ) -> None:
        self.fo = fo
        self.d = d
        self.conn = conn
        self.local_only = local
        self.budget = RetryBudget(fo.cfg.attempts)
        self.replay = replay
        self.timer: asyncio.TimerHandle | None = None
        self.opened_at = self.heard_at = self.due = 0.0
        # The stream ended before the visitor's socket was joined (a handed-over socket gets
        # its transport a moment later): move once it is here.
        self.ended_early = False
        self.rx_at = self.nops_at = 0


class FailoverPipe(IdlePipe):
    """A pipe that replays its visitor's first bytes on another connector when the first fails."""

    __slots__ = ("_w",)

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
        limit = fo.cfg.replay
        replay = bytearray(prefix) if len(prefix) <= limit else None
        self._w: _Watch | None = _Watch(fo, conn, d, replay, local_only)
        self._watch(conn)
        if replay is None and self._w.timer is None:
            self._w = None  # nothing to replay, nothing to watch: a plain pipe from the start

    @property
    def watching(self) -> bool:
        """Whether the stream still waits for its first byte back (failover possible)."""
        return self._w is not None

    def _watch(self, conn: LocalConnector) -> None:
        """Start watching ``conn`` for the stream just opened on it."""
        w = self._w
        assert w is not None
        w.conn = conn
        w.budget.use(conn.connector_id.text)
        loop = conn.mux.loop or asyncio.get_running_loop()
        w.opened_at = w.heard_at = loop.time()
        w.rx_at = conn.mux.bytes_in
        w.nops_at = conn.mux.session.nops_received
        if w.timer is not None:
            w.timer.cancel()
            w.timer = None
        self._arm(w, loop)

    def _arm(self, w: _Watch, loop: asyncio.AbstractEventLoop) -> None:
        bound = w.conn.health.bound(w.fo.cfg)
        if bound > 0:
            w.due = loop.time() + bound / 2
            w.timer = loop.call_at(w.due, self._check)

    # -- visitor side ----------------------------------------------------------------------
    def __call__(self, data: bytes) -> None:  # data_received: StreamPipe
        w = self._w
        if w is not None and (r := w.replay) is not None:
            if len(r) + len(data) > w.fo.cfg.replay:
                w.replay = None  # too much to replay: this stream is committed
                if w.timer is None:
                    self._w = None
            else:
                r += data
        super().__call__(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._commit()
        super().connection_lost(exc)

    def close(self) -> None:
        self._commit()
        super().close()

    # -- stream side -------------------------------------------------------------------------
    def stream_data(self, data: bytes | memoryview) -> None:
        if self._w is not None:
            self._replied()
        super().stream_data(data)

    def stream_datav(self, parts: list[bytes | memoryview]) -> None:
        if self._w is not None:
            self._replied()
        super().stream_datav(parts)

    def _replied(self) -> None:
        w = self._w
        assert w is not None
        mux = w.conn.mux
        loop = mux.loop or asyncio.get_running_loop()
        w.conn.health.replied(mux.session.nops_received != w.nops_at, loop.time() - w.opened_at)
        self._commit()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        w = self._w
        if w is None or not w.ended_early:
            super().connection_made(transport)
            return
        w.ended_early = False
        self.transport = transport  # type: ignore[assignment]
        if not self._move("closed before replying") or self.transport is not None:
            # Moved to a stream here, or not moved (the old stream is closed: this closes it).
            super().connection_made(transport)
        # else handed over to another worker: the transport is gone

    def stream_ended(self) -> None:
        w = self._w
        if w is not None and w.replay is not None:
            if self.transport is None and not self._closed:
                w.ended_early = True
                return
            if self._move("closed before replying"):
                return
        self._commit()
        super().stream_ended()

    # -- failover ----------------------------------------------------------------------------
    def _commit(self) -> None:
        w, self._w = self._w, None
        if w is not None and w.timer is not None:
            w.timer.cancel()
            w.timer = None

    def _check(self) -> None:
        """Half-bound tick while the stream waits: has the session said anything since?"""
        w = self._w
        if w is None:
            return
        w.timer = None
        st, conn = self.stream, w.conn
        if st is None or st.closed or self.transport is None:
            return
        mux = conn.mux
        loop = mux.loop or asyncio.get_running_loop()
        now = loop.time()
        cfg = w.fo.cfg
        lagged = now - w.due > conn.health.bound(cfg) / 4
        if mux.bytes_in != w.rx_at or mux.reading_paused or lagged:
            # Heard from (some time since the last tick; now is the safe side), or silence that
            # proves nothing: we were not reading that tunnel, or this loop itself was stalled
            # (timers run before the reads that waited meanwhile).
            w.rx_at = mux.bytes_in
            w.heard_at = now
        action = conn.health.verdict(cfg, now - w.heard_at, w.replay is not None)
        if action is not Action.WAIT:
            if conn.health.mark_suspect(mux.bytes_in):
                event(log, logging.INFO, "connector.suspect",
                      tunnel=tunnel_ref(conn.tunnel_id.text, log), connector=conn.connector_id.text,
                      silent=round(now - w.heard_at, 2), acks=conn.health.acks)  # fmt: skip
            if action is Action.RETRY and self._move("silent"):
                return
            if action is Action.SUSPECT and not conn.health.acks:
                return  # a gost client may just be slow: leave this stream alone
        self._arm(w, loop)

    def _move(self, why: str) -> bool:
        """Reopen the stream on another connector and replay; False when there is none."""
        w = self._w
        if w is None or w.replay is None or self.transport is None or not w.budget.left:
            return False
        replay, d = w.replay, w.d
        nxt = w.fo.next_connector(d, w.budget, w.local_only)
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
        w.fo.retries += 1
        event(log, logging.DEBUG, "stream.retried", tunnel=tunnel_ref(d.tunnel_id.text, log),
              kind=d.kind, reason=why, from_connector=w.conn.connector_id.text,
              to_connector=nxt.connector_id.text, replayed=len(replay))  # fmt: skip
        self._watch(nxt)
        return True

    def _hand_off(self, info: ConnectorInfo, why: str) -> bool:
        """Give the visitor's socket, with the replay bytes, to the worker that owns ``info``."""
        t, w = self.transport, self._w
        if t is None or w is None or w.replay is None:
            return False
        hand_off = w.fo.hand_off
        if hand_off is None:
            return False
        from burrow.server.router import NO_REPLY

        replay, fo, d, was = w.replay, w.fo, w.d, w.conn.connector_id.text
        self._commit()
        old, self.stream = self.stream, None
        if old is not None:
            old.sink = None
            old.close()
        self.transport = None  # connection_lost from the detach below must touch nothing
        self._closed = True
        fo.retries += 1
        event(log, logging.DEBUG, "stream.retried", tunnel=tunnel_ref(d.tunnel_id.text, log),
              kind=d.kind, reason=why, from_connector=was, to_connector=info.connector_id,
              worker=info.worker)  # fmt: skip
        # The router owns the connection from here, and closes it if the handoff fails.
        hand_off(info, replace(d, reply=NO_REPLY), Inbound(transport=t), bytes(replay))
        return True
