"""Server-side choice of a tunnel connector for one visitor stream (docs/protocol.md, CONNECT).

Relay dialect: keep the connectors of the right network, then round robin on a per-tunnel
counter (the caller stores the counter; we return its next value). Tunnel dialect: keep the
connectors of the right network, then weighted random on the weight byte of the connector ID
(0 counts as 1); if any connector has weight 255 it is exclusive: only weight-255 connectors are
eligible. Closed connectors are the caller's business (it passes only live ones, or counts a
failed stream open as one of its attempts, as gost does).
"""

from __future__ import annotations

import random
from bisect import bisect_right
from collections.abc import Sequence
from itertools import accumulate
from typing import Final, Literal, Protocol, TypeVar

EXCLUSIVE_WEIGHT: Final = 255


class Candidate(Protocol):
    """A connector as far as selection is concerned."""

    @property
    def weight(self) -> int: ...  # 0 counts as 1; 255 is exclusive

    @property
    def network(self) -> str: ...  # "tcp" | "udp"


C = TypeVar("C", bound=Candidate)


def _on_network(candidates: Sequence[C], network: str) -> list[C]:
    return [c for c in candidates if c.network == network]


def select_round_robin(candidates: Sequence[C], network: str, counter: int) -> tuple[C | None, int]:
    """Relay dialect: ``(candidates_on_network[counter % n], counter + 1)``; ``(None, counter)``."""
    eligible = _on_network(candidates, network)
    if not eligible:
        return None, counter
    return eligible[counter % len(eligible)], counter + 1


def select_weighted(candidates: Sequence[C], network: str, rng: random.Random) -> C | None:
    """Tunnel dialect: weighted random among the candidates on ``network``, 255 exclusive."""
    # gost returns a tunnel's only connector without checking its network; we always check, so a
    # UDP-only tunnel never receives a TCP visitor stream (and the reverse).
    eligible = _on_network(candidates, network)
    exclusive = [c for c in eligible if c.weight == EXCLUSIVE_WEIGHT]
    if exclusive:
        eligible = exclusive
    if not eligible:
        return None
    bounds = list(accumulate(max(c.weight, 1) for c in eligible))
    return eligible[bisect_right(bounds, rng.randrange(bounds[-1]))]


def pick_connector(
    candidates: Sequence[C],
    network: str,
    *,
    dialect: Literal["relay", "tunnel"],
    counter: int,
    rng: random.Random,
) -> tuple[C | None, int]:
    """One selection in the given dialect; returns the choice and the tunnel's next counter."""
    if dialect == "relay":
        return select_round_robin(candidates, network, counter)
    if dialect == "tunnel":
        return select_weighted(candidates, network, rng), counter
    raise ValueError(f"unknown dialect {dialect!r}")


def effective_weight(weight: int, authenticated: bool) -> int:
    """The weight a connector is selected with: 255 (exclusive) needs an authenticated BIND.

    With auth off anyone holding the tunnel ID can join its pool; an exclusive claim from such a
    client would take every request from the legitimate connectors, so it counts as 1.
    """
    if weight == EXCLUSIVE_WEIGHT and not authenticated:
        return 1
    return weight
