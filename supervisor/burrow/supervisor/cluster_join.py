"""Supervisor's cluster membership: resolve the advertised addresses, start the Redis client.

``ClusterJoin`` is a mixin of ``Supervisor`` (arbiter.py), which owns the state declared here.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from burrow.cluster.store import placement
from burrow.common.hostport import parse_host_port
from burrow.common.logfmt import event

from .cluster_setup import ClusterSetup
from .listeners import resolve_address

if TYPE_CHECKING:
    from burrow.admin.book import StatsBook

    from .cluster_bridge import ClusterBridge
    from .listeners import BoundListener
    from .loop import Loop
    from .registry import RegistryBroker

log = logging.getLogger("burrow.supervisor")


class ClusterJoin:
    """Joining the cluster and ``/api/cluster``'s status; mixed into ``Supervisor``."""

    # Set up by Supervisor.__init__ (arbiter.py).
    book: StatsBook | None
    loop: Loop
    _broker: RegistryBroker | None
    _bridge: ClusterBridge | None
    _listeners: list[BoundListener]

    def _join_cluster(self, setup: ClusterSetup) -> bool:
        """Start the Redis client (cluster_client.py); False when an address cannot be resolved."""
        assert self._broker is not None
        plan = setup.plan
        advertise = resolve_address(
            plan.advertise_host, plan.advertise_port, "relay", self._listeners
        )
        address = advertise
        if setup.internal is not None:
            host, port = parse_host_port(setup.internal)
            address = resolve_address(host, port, "internal", self._listeners)
        if advertise is None or address is None:
            key = "burrow.cluster.advertise" if advertise is None else "burrow.cluster.internal"
            event(log, logging.ERROR, "cluster.bad_address", key=key,
                  error="port 0 but no listener of this node on that host to take the port from",
                  fix="name the fixed port, or the host of this node's relay/internal listener")  # fmt: skip
            return False
        from .cluster_bridge import ClusterBridge  # lazily: redis only with a cluster
        from .cluster_client import ClusterClient

        bridge = ClusterBridge(self._broker, self.loop)
        bridge.client = ClusterClient(plan, advertise=advertise, address=address, post=bridge.post)
        self._broker.on_publish = bridge.published
        self._bridge = bridge
        if self.book is not None:
            self.book.cluster = self.cluster_status
        error = bridge.client.start()
        if error is not None:
            event(log, logging.ERROR, "cluster.sd_bind_failed", error=error,
                  key="burrow.cluster.sd_listen", fix="pick a free address for sd_listen")  # fmt: skip
            return False
        return True

    def cluster_status(self) -> dict[str, Any] | None:
        """``/api/cluster``: Redis state, nodes, where each tunnel lives (any thread)."""
        bridge = self._bridge
        if bridge is None or bridge.client is None:
            return None
        status = bridge.client.status()
        status["cluster_down"] = status["redis"] != "up"
        status["tunnels"] = placement(bridge.connectors, status["node"])
        return status
