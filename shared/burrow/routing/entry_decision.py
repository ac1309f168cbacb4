"""The entry point's routing decision as data: sniff result -> ingress rule -> route or refusal.

Pure (docs/architecture.md, Flows (a)): the worker's EntryPoint only carries the answer out (logs
the event, hands the connection to the router, or refuses it). A refusal's relay status becomes HTTP
502, or 503 for SERVICE_UNAVAILABLE, when the visitor spoke HTTP (burrow.server.router.refuse).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from burrow.common.hostport import join_host_port
from burrow.common.ids import TunnelId
from burrow.proto.addr import MAX_DOMAIN_LEN
from burrow.proto.relay import Status
from burrow.proto.sniff import Sniffed, http_host_port
from burrow.routing.ingress import Ingress
from burrow.routing.refusal import BAD_HOST, HOST_TOO_LONG, NO_HOST, NO_RULE, PRIVATE


@dataclass(frozen=True, slots=True)
class EntryRefuse:
    """Answer ``status`` and close; log ``event`` (None: no log line) with ``fields``.

    ``code`` is the burrow.routing.refusal reason (the HTTP body and the rate limiter's key),
    ``host`` the host asked for ("" when none was found).
    """

    status: Status
    event: str | None
    fields: dict[str, str] = field(default_factory=dict)
    code: str = ""
    host: str = ""


@dataclass(frozen=True, slots=True)
class EntryRoute:
    """Deliver the connection to ``tunnel_id``, naming ``target`` (host:port) to the client."""

    tunnel_id: TunnelId
    host: str
    target: str


def decide_entry(found: Sniffed | None, ingress: Ingress, dialect: str) -> EntryRefuse | EntryRoute:
    """Where a sniffed visitor connection goes, or why it is refused."""
    if found is None or not found.host:
        return EntryRefuse(
            Status.NETWORK_UNREACHABLE,
            "entrypoint.unroutable",
            {"reason": "no host sniffed"},
            code=NO_HOST,
        )
    try:
        host, port = http_host_port(found.host, 80 if found.protocol == "http" else 443)
    except ValueError:
        return EntryRefuse(Status.NETWORK_UNREACHABLE, None, code=BAD_HOST, host=found.host)
    if len(host) > MAX_DOMAIN_LEN:
        # A wildcard rule would match it, but no Addr feature / stream header can carry it.
        why = f"host longer than {MAX_DOMAIN_LEN} bytes"
        return EntryRefuse(
            Status.HOST_UNREACHABLE,
            "entrypoint.refused",
            {"host": host[:64], "reason": why},
            code=HOST_TOO_LONG,
            host=host,
        )
    route = ingress.lookup(host)
    if route is None or route.tunnel_id.is_zero or route.private:
        private = route is not None and route.private
        why = "private tunnel" if private else "no ingress rule"
        return EntryRefuse(
            Status.HOST_UNREACHABLE,
            "entrypoint.refused",
            {"host": host, "reason": why},
            code=PRIVATE if private else NO_RULE,
            host=host,
        )
    if dialect == "relay" and found.protocol == "tls":
        port = 0  # rc-era servers send the SNI with port 0 (docs/protocol.md, Per-stream header)
    target = join_host_port(host, port)
    return EntryRoute(route.tunnel_id, host, target)
