"""Which registering tunnels no ingress rule names, so the server can say so once.

Pure: the relay server asks :meth:`UnnamedTunnels.check` on every BIND it accepts and logs a
warning when it answers True. A tunnel ID named by any rule, public or private (``$``), is
fine; so is every tunnel when the service has no rules at all (visitors name tunnel IDs
themselves; the worker says once at start that an entry point has no rules). Each unnamed ID is
reported once per table (one per worker), and not by a worker that sees a connector of the
tunnel already registered on another worker: a reload builds a new table, so a tunnel still
unnamed after it is reported once more, one named by the new rules is not.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from burrow.common.ids import TunnelId
from burrow.routing.ingress import parse_endpoint

MAX_REPORTED: Final = 4096  # unauthenticated BINDs pick IDs at will: bound what we remember


class UnnamedTunnels:
    """The tunnel IDs the ingress rules name, and the unnamed ones already reported."""

    __slots__ = ("_named", "_reported", "rules")

    def __init__(self, rules: Iterable[tuple[str, str]]) -> None:
        self._named: set[TunnelId] = set()
        self.rules = 0
        for _host, endpoint in rules:
            self.rules += 1
            tunnel_id, _private = parse_endpoint(endpoint)
            if not tunnel_id.is_zero:
                self._named.add(tunnel_id)
        self._reported: set[TunnelId] = set()

    def named(self, tunnel_id: TunnelId) -> bool:
        """True when some rule (public or private) routes to ``tunnel_id``."""
        return tunnel_id in self._named

    def pending(self, tunnel_id: TunnelId) -> bool:
        """Whether :meth:`check` could still answer True for ``tunnel_id`` (cheap: two set
        lookups), so a caller can skip working out ``elsewhere`` for a named tunnel."""
        return (
            bool(self.rules)
            and tunnel_id not in self._named
            and (tunnel_id not in self._reported and len(self._reported) < MAX_REPORTED)
        )

    def check(self, tunnel_id: TunnelId, *, elsewhere: bool = False) -> bool:
        """True the first time an unnamed ``tunnel_id`` registers (while there are rules).

        ``elsewhere``: a connector of the tunnel is already registered on another worker
        (which said so when it came): count this one as reported, but stay quiet.
        """
        if not self.rules or tunnel_id in self._named or tunnel_id in self._reported:
            return False
        if len(self._reported) >= MAX_REPORTED:
            return False  # the rate-limited log line is the caller's business; memory is ours
        self._reported.add(tunnel_id)
        return not elsewhere
