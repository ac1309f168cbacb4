"""PlanSet: the resolved, frozen plans a worker runs, planned once by the supervisor.

Wire (inside WorkerSpec.plans and Reconfigure.plans)::

    msgpack(PlanSet)   # servers / clients / visitors lists of the plan dataclasses + settings

Workers decode this and run it; they never read config files or call ``build_plans`` (ingress
``file`` rules are already inlined in ``RelayServerPlan.ingress_rules``), so a restarted worker
serves exactly what the supervisor holds even if a file changed or vanished meanwhile.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from .cluster import ClusterPlan, plan_cluster
from .limits import Limits
from .plan_types import RelayServerPlan, ServicePlan, TunnelClientPlan, VisitorPlan
from .schema import Config


class WorkerSettings(msgspec.Struct, frozen=True, kw_only=True):
    """The ``[burrow]`` settings a worker needs, defaults settled."""

    busy_poll_us: int = 0
    grace: float = 10.0
    limits: Limits = msgspec.field(default_factory=Limits)
    # The admin endpoint is on: send counters with every heartbeat (burrow.worker.stats).
    stats: bool = False
    # [burrow] access_log (burrow.server.access_log).
    access_log: bool | tuple[str, ...] = False


class PlanSet(msgspec.Struct, frozen=True, kw_only=True):
    """Every service plan of one generation, by role, plus the worker settings."""

    settings: WorkerSettings
    servers: tuple[RelayServerPlan, ...] = ()
    clients: tuple[TunnelClientPlan, ...] = ()
    visitors: tuple[VisitorPlan, ...] = ()
    # [burrow.cluster], checked: this node's name and the secret a forward proves (None: alone).
    cluster: ClusterPlan | None = None

    def plans(self) -> list[ServicePlan]:
        """All plans, servers first."""
        return [*self.servers, *self.clients, *self.visitors]

    def changed(self, new: PlanSet) -> set[str]:
        """Names of services whose plan differs between ``self`` and ``new`` (or exists in one)."""
        old = {p.name: p for p in self.plans()}
        cur = {p.name: p for p in new.plans()}
        return {n for n in old.keys() | cur.keys() if old.get(n) != cur.get(n)}


def make_planset(
    config: Config, plans: Sequence[ServicePlan], source: str | None = None
) -> PlanSet:
    """Bundle ``plans`` with the worker's ``[burrow]`` settings (ConfigError: ``source``)."""
    s = config.burrow
    return PlanSet(
        settings=WorkerSettings(
            busy_poll_us=s.busy_poll_us,
            grace=s.grace,
            limits=s.limits,
            stats=s.admin is not None,
            access_log=s.access_log if isinstance(s.access_log, bool) else tuple(s.access_log),
        ),
        servers=tuple(p for p in plans if isinstance(p, RelayServerPlan)),
        clients=tuple(p for p in plans if isinstance(p, TunnelClientPlan)),
        visitors=tuple(p for p in plans if isinstance(p, VisitorPlan)),
        cluster=plan_cluster(config, source),
    )


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(PlanSet)


def encode_planset(plans: PlanSet) -> bytes:
    """msgpack bytes for the worker spec / Reconfigure."""
    return _encoder.encode(plans)


def decode_planset(data: bytes) -> PlanSet:
    """Decode what ``encode_planset`` produced; raises msgspec errors on a mismatch."""
    return _decoder.decode(data)
