"""Client-side choice of forwarder nodes for a tunnelled stream (docs/configuration.md,
``[[services]]``; gost's late-relay semantics, the documented ones).

A node host ``V`` matches the request host ``H`` (port stripped) when ``V == H``, or when ``V``
starts with ``.`` and ``H`` ends with ``V[1:]``. That is a plain suffix test, kept from gost on
purpose: ``.example.com`` matches ``example.com``, ``a.example.com`` and also ``xexample.com``.
A leading ``*`` is read as ``.`` (``*.example.com`` and ``*example.com`` both mean
``.example.com``, as gost HEAD rewrites them). If any node matches, only matching nodes are
candidates; otherwise the nodes without a host are the fallback; a node whose host does not match
is never used. With no host, nodes are filtered by the sniffed protocol when there is one.

Like the server's ingress, and unlike gost, hosts and protocols compare ASCII lower-cased, and
IPv6 literals compare as addresses (``::1``, ``[::1]`` and ``0::1`` are one host).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar

from burrow.common.hostport import strip_port
from burrow.routing.ingress import fold_case, host_key


class HasHost(Protocol):
    """A forwarder node as far as matching is concerned."""

    @property
    def host(self) -> str | None: ...

    @property
    def protocol(self) -> str | None: ...


N = TypeVar("N", bound=HasHost)
T = TypeVar("T")


def _node_pattern(host: str) -> str:
    """A node's host normalised for matching: lower-cased, leading ``*`` read as ``.``."""
    v = host_key(host)
    if v.startswith("*"):
        v = v[1:] if v.startswith("*.") else "." + v[1:]
    return v


def host_matches(node_host: str, host: str) -> bool:
    """Whether a node host (``name`` / ``.suffix`` / ``*suffix``) matches a port-less host."""
    v = _node_pattern(node_host)
    h = host_key(host)
    return v == h or (v.startswith(".") and h.endswith(v[1:]))


def match_nodes(nodes: Sequence[N], host: str, protocol: str | None = None) -> list[N]:
    """The candidate nodes for a stream to ``host`` (may carry a port) and a sniffed protocol."""
    h = strip_port(host) if host else ""
    if h:
        matched = [n for n in nodes if n.host and host_matches(n.host, h)]
        if matched:
            return matched
        return [n for n in nodes if not n.host]
    if protocol:
        want = fold_case(protocol)
        return [n for n in nodes if not n.protocol or fold_case(n.protocol) == want]
    return list(nodes)


class RoundRobin:
    """Per-list round-robin cursor (gost's default selector)."""

    __slots__ = ("_next",)

    def __init__(self) -> None:
        self._next = 0

    def pick(self, items: Sequence[T]) -> T | None:
        """The next item in turn, or None for an empty list."""
        if not items:
            return None
        item = items[self._next % len(items)]
        self._next += 1
        return item
