"""TunnelPool: this worker's tunnel connections plus its view of every other worker's.

Picking a connector uses the whole pool (docs/protocol.md, CONNECT): the relay dialect goes round
robin, the tunnel dialect picks by weight (255 = exclusive). A local pick opens a stream here; a
remote pick means the caller hands the visitor's socket to the worker that owns that connector.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field

from burrow.common.ids import TunnelId
from burrow.common.logfmt import event, tunnel_ref
from burrow.common.ratelimit import LogLimiter
from burrow.ipc.messages import ConnectorInfo
from burrow.net.mux import MuxConnection
from burrow.routing.health import ConnectorHealth, prefer_healthy
from burrow.routing.select import pick_connector
from burrow.worker.bus import BusClient
from burrow.worker.stats import STATS, Tracked

log = logging.getLogger("burrow.pool")

# A burst of registrations (a server restart, thousands of clients reconnecting) logs this many
# tunnel.up lines per second per worker and sums the rest up in one line: a line per BIND was a
# fifth of a BIND's CPU at 10,000 tunnels (BENCHMARKS.md, Scale). Below the rate every tunnel
# gets its line; `burrow status` and the admin API list every tunnel at any rate.
UP_LINES_PER_SECOND = 100


class UpLog:
    """The tunnel.up lines of one worker, at most ``limiter.burst`` per window, then a sum."""

    def __init__(self, limiter: LogLimiter | None = None) -> None:
        self.limiter = limiter or LogLimiter(window=1.0, burst=UP_LINES_PER_SECOND)
        self._timer: asyncio.TimerHandle | None = None

    def __call__(self, conn: LocalConnector, tid: str = "", cid: str = "") -> None:
        """Log ``conn`` coming up (``tid`` / ``cid``: its IDs' text, if the caller has them)."""
        if not log.isEnabledFor(logging.INFO):
            return
        ok, carried = self.limiter.admit("tunnel.up", time.monotonic())
        if carried:
            self._summary(carried)
        if not ok:
            self._arm()
            return
        event(log, logging.INFO, "tunnel.up", tunnel=tunnel_ref(tid or conn.tunnel_id.text, log),
              connector=cid or conn.connector_id.text, network=conn.network, peer=conn.peer,
              dialect=conn.dialect, weight=conn.weight or 1)  # fmt: skip

    def _summary(self, count: int) -> None:
        window = self.limiter.window
        event(log, logging.INFO, "tunnel.up_burst", count=count, seconds=window,
              summary=f"{count:,} more tunnels up in the last {window:g} s, not listed one by "
              "one (burrow status lists every tunnel)")  # fmt: skip

    def _arm(self) -> None:
        if self._timer is not None:
            return
        when = self.limiter.next_due()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (a unit test): the sum comes with the next line instead
        if when is not None:
            self._timer = loop.call_later(max(0.0, when - time.monotonic()) + 0.01, self._flush)

    def _flush(self) -> None:
        self._timer = None
        for _key, count in self.limiter.due(time.monotonic()):
            self._summary(count)
        self._arm()


@dataclass(slots=True, eq=False)
class LocalConnector:
    """One registered tunnel connection held by this worker."""

    tunnel_id: TunnelId
    connector_id: TunnelId
    network: str
    weight: int
    dialect: str
    peer: str
    mux: MuxConnection
    since: float = field(default_factory=time.time)
    health: ConnectorHealth = field(default_factory=ConnectorHealth)
    service: str = ""  # the relay server service holding it (metrics label)

    @property
    def usable(self) -> bool:
        return not self.mux.closed

    @property
    def suspect(self) -> bool:
        """Silent while a stream waited (docs/failover.md); healthy again on its next frame."""
        return self.health.is_suspect(self.mux.bytes_in)


class TunnelPool:
    """Local connectors by tunnel, published on the bus; remote ones read from the bus view."""

    def __init__(self, worker: int, bus: BusClient | None) -> None:
        self.worker = worker
        self.bus = bus
        self.local: dict[TunnelId, list[LocalConnector]] = {}
        # Connector ID text -> connector: a handoff names its connector, and a scan of every
        # local connector (formatting each UUID) cost milliseconds at thousands of tunnels.
        self._by_cid: dict[str, LocalConnector] = {}
        self._counters: dict[tuple[TunnelId, str], int] = {}
        self._rng = random.Random()
        self.up_log = UpLog()

    def add(self, conn: LocalConnector) -> None:
        """Register a tunnel connection here and tell every other worker."""
        self.local.setdefault(conn.tunnel_id, []).append(conn)
        # Formatted once: past the 1,024 IDs of the text cache (a burst of BINDs) each .text
        # is a fresh hex formatting, and a BIND used four of each.
        tid, cid = conn.tunnel_id.text, conn.connector_id.text
        self._by_cid[cid] = conn
        STATS.track(
            Tracked(conn.service, "server", tid, cid, conn.network, conn.dialect, conn.peer,
                    conn.since, conn.mux)
        )  # fmt: skip
        self.up_log(conn, tid, cid)
        if self.bus is not None:
            self.bus.connector_up(
                ConnectorInfo(
                    tunnel_id=tid,
                    connector_id=cid,
                    worker=self.worker,
                    network=conn.network,
                    weight=conn.weight,
                    dialect=conn.dialect,
                    peer=conn.peer,
                    since=conn.since,
                )
            )

    def remove(self, conn: LocalConnector, reason: str) -> None:
        """Forget a tunnel connection that closed."""
        conns = self.local.get(conn.tunnel_id)
        if conns is None or conn not in conns:
            return
        conns.remove(conn)
        self._by_cid.pop(conn.connector_id.text, None)
        STATS.untrack(conn.mux)
        if not conns:
            del self.local[conn.tunnel_id]
        event(
            log,
            logging.INFO,
            "tunnel.down",
            tunnel=tunnel_ref(conn.tunnel_id.text, log),
            connector=conn.connector_id.text,
            network=conn.network,
            peer=conn.peer,
            reason=reason,
        )
        if self.bus is not None:
            self.bus.connector_down(conn.tunnel_id.text, conn.connector_id.text)

    def find_local(self, connector_id: str) -> LocalConnector | None:
        """The local connector with this ID, if it is still open."""
        c = self._by_cid.get(connector_id)
        return c if c is not None and c.usable else None

    def candidates(self, tunnel_id: TunnelId, network: str) -> list[LocalConnector | ConnectorInfo]:
        """Every usable connector of the tunnel for ``network``, local first, then remote."""
        out: list[LocalConnector | ConnectorInfo] = [
            c for c in self.local.get(tunnel_id, ()) if c.usable and c.network == network
        ]
        if self.bus is not None:
            for info in self.bus.view.lookup(tunnel_id.text, network):
                if info.worker != self.worker:
                    out.append(info)
        return out

    def pick(
        self,
        tunnel_id: TunnelId,
        network: str,
        dialect: str,
        exclude: set[str] | None = None,
    ) -> LocalConnector | ConnectorInfo | None:
        """Choose one connector (round robin or weighted); None when the tunnel has none."""
        cands = self.candidates(tunnel_id, network)
        if exclude:
            cands = [c for c in cands if _cid(c) not in exclude]
        if not cands:
            return None
        if len(cands) == 1:
            # Nothing to choose (candidates() kept only this network): no round-robin counter.
            # Stored for every tunnel routed here, counters were ~0.2 KB per tunnel per worker,
            # a tuple key holding a TunnelId from the request (BENCHMARKS.md, fourth pass).
            return cands[0]
        # A suspect connector gets new streams only when no healthy one is left.
        cands = prefer_healthy(cands, [isinstance(c, LocalConnector) and c.suspect for c in cands])
        if dialect == "tunnel":  # weighted random: no counter either
            return pick_connector(cands, network, dialect="tunnel", counter=0, rng=self._rng)[0]
        key = (tunnel_id, network)
        choice, self._counters[key] = pick_connector(
            cands, network, dialect="relay", counter=self._counters.get(key, 0), rng=self._rng
        )
        return choice

    def count(self, tunnel_id: TunnelId) -> int:
        """Connectors of the tunnel on this server (every network, every worker)."""
        n = sum(1 for c in self.local.get(tunnel_id, ()) if c.usable)
        if self.bus is not None:
            n += sum(1 for i in self.bus.view.lookup(tunnel_id.text) if i.worker != self.worker)
        return n

    def summary(self) -> dict[str, int]:
        """Tunnel ID -> number of local connectors (for logs)."""
        return {t.text: len(c) for t, c in self.local.items()}


def _cid(c: LocalConnector | ConnectorInfo) -> str:
    return c.connector_id.text if isinstance(c, LocalConnector) else c.connector_id
