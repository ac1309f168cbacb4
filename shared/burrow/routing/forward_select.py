"""Which other nodes a forward tries, in which order (sans IO; burrow.server.forward dials them).

One candidate per node (a node holding several connectors of the tunnel picks among them
itself), never this node, never an entry without an address to dial, sorted by node name and
rotated by a per-tunnel turn so successive forwards spread over the nodes that hold the tunnel.
"""

from __future__ import annotations

from collections.abc import Iterable

from burrow.ipc.messages import ConnectorInfo


def forward_targets(
    remote: Iterable[ConnectorInfo], self_node: str, turn: int = 0
) -> list[ConnectorInfo]:
    """The nodes to try for one forward, first choice first."""
    firsts: dict[str, ConnectorInfo] = {}
    for info in remote:
        if info.node and info.node != self_node and info.address:
            firsts.setdefault(info.node, info)
    out = [firsts[n] for n in sorted(firsts)]
    if len(out) > 1:
        k = turn % len(out)
        out = out[k:] + out[:k]
    return out
