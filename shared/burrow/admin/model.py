"""What the admin endpoint shows: one consistent snapshot, built by whoever hosts it.

The host (the supervisor today; a one-process tunnel client later) implements
:class:`AdminState`; the HTTP server and the renderers only ever see :class:`AdminSnapshot`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from burrow.ipc.messages import ConnectorStats

# (service, role, tunnel_id) -> [bytes_in, bytes_out, streams_total]
TrafficKey = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class WorkerView:
    """One worker process as the host sees it."""

    index: int
    pid: int
    generation: int
    ready: bool
    started: float  # wall clock
    reported: float | None  # wall clock of its last Stats, None before the first


@dataclass(frozen=True, slots=True)
class AdminSnapshot:
    """Every number the admin endpoint serves, summed over workers (dead ones included)."""

    started: float
    ready: bool
    not_ready: str  # why not, "" when ready
    connectors: list[tuple[int, ConnectorStats]]  # (worker index, live connector)
    traffic: dict[TrafficKey, list[int]]
    events: dict[tuple[str, str], int]  # (service, event) -> count
    workers: list[WorkerView]
    restarts: int = 0
    reloads_ok: int = 0
    reloads_failed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class AdminState(Protocol):
    """The provider an admin server reads; every method must be safe to call from its thread."""

    def snapshot(self) -> AdminSnapshot:
        """The numbers as of now."""
        ...

    def config(self) -> dict[str, Any]:
        """The running configuration, secrets already redacted."""
        ...
