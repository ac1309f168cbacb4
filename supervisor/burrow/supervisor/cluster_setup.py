"""What the supervisor needs to join a cluster; its own module so that a server without a
cluster never imports redis (13 MB PSS with asyncio: BENCHMARKS.md, memory, third pass)."""

from __future__ import annotations

from dataclasses import dataclass

from burrow.config.cluster import ClusterPlan


@dataclass(frozen=True, slots=True)
class ClusterSetup:
    """What the supervisor needs to join: the plan and the raw ``internal`` address."""

    plan: ClusterPlan
    internal: str | None = None
