"""Public entry point: sniff HTTP Host / TLS SNI, look up the ingress, route (tunnel-mode.md §5).

Routing happens once per visitor connection, then the connection is piped: WebSockets and
streaming responses keep working, but unlike rc-era gost (which re-routed every HTTP request)
later requests on a keep-alive connection go to the same tunnel.
"""

from __future__ import annotations

import asyncio
import logging
import socket

from burrow.common.logfmt import event
from burrow.config.plan_types import RelayServerPlan
from burrow.proto.relay import Status
from burrow.proto.sniff import MAX_SNIFF_BYTES, NEED_MORE, Sniffed, http_host_port, sniff
from burrow.routing.ingress import Ingress
from burrow.server.inbound import Handshake, Inbound, serve_handshakes
from burrow.server.router import Delivery, Router, refuse

log = logging.getLogger("burrow.entrypoint")


class SniffHandshake(Handshake):
    """Collects the HTTP head or TLS ClientHello (bounded in size and time), then routes."""

    __slots__ = ("entry",)

    def __init__(self, loop: asyncio.AbstractEventLoop, entry: EntryPoint) -> None:
        super().__init__(loop, entry.plan.sniff_timeout)
        self.entry = entry

    def inspect(self) -> None:
        buf = self.buf
        result = sniff(buf)
        if result is NEED_MORE and len(buf) < MAX_SNIFF_BYTES:
            return
        found = result if isinstance(result, Sniffed) else None
        prefix = bytes(buf)
        self.entry.route(self.finish(), prefix, found)

    def give_up(self, why: str) -> None:
        self.entry.route(self.finish(), bytes(self.buf), None)


class EntryPoint:
    """Serves one entry point address of a relay/tunnel server service."""

    def __init__(self, plan: RelayServerPlan, router: Router) -> None:
        self.plan = plan
        self.router = router
        self.ingress = Ingress(plan.ingress_rules)

    def update(self, plan: RelayServerPlan) -> None:
        """Take a reloaded plan (same listeners): new ingress rules and options from now on."""
        self.plan = plan
        self.ingress = Ingress(plan.ingress_rules)

    async def serve(self, listener: socket.socket) -> None:
        """Accept until cancelled; each connection starts as a SniffHandshake."""
        await serve_handshakes(listener, lambda loop: SniffHandshake(loop, self))

    def route(self, inbound: Inbound, prefix: bytes, found: Sniffed | None) -> None:
        """Route a sniffed connection (or refuse it); never raises."""
        try:
            self._route(inbound, prefix, found)
        except Exception as exc:  # noqa: BLE001 - one connection must never take the worker down
            event(log, logging.WARNING, "entrypoint.error", peer=inbound.peer, error=repr(exc))
            inbound.close()

    def _route(self, inbound: Inbound, prefix: bytes, found: Sniffed | None) -> None:
        peer = inbound.peer
        if found is None or not found.host:
            event(log, logging.DEBUG, "entrypoint.unroutable", peer=peer, reason="no host sniffed")
            return refuse(inbound, "entrypoint", prefix, Status.NETWORK_UNREACHABLE)
        try:
            host, port = http_host_port(found.host, 80 if found.protocol == "http" else 443)
        except ValueError:
            return refuse(inbound, "entrypoint", prefix, Status.NETWORK_UNREACHABLE)
        route = self.ingress.lookup(host)
        if route is None or route.tunnel_id.is_zero or route.private:
            why = "private tunnel" if route is not None and route.private else "no ingress rule"
            event(log, logging.DEBUG, "entrypoint.refused", peer=peer, host=host, reason=why)
            return refuse(inbound, "entrypoint", prefix, Status.HOST_UNREACHABLE)
        if self.plan.dialect == "relay" and found.protocol == "tls":
            port = 0  # rc-era servers send the SNI with port 0 (tunnel-mode.md §5.4)
        d = Delivery(
            kind="entrypoint",
            service=self.plan.name,
            tunnel_id=route.tunnel_id,
            network="tcp",
            dialect=self.plan.dialect,
            peer=peer,
            target=f"{host}:{port}" if ":" not in host else f"[{host}]:{port}",
            reply=-1,
        )

        def unavailable() -> None:
            event(
                log,
                logging.DEBUG,
                "entrypoint.unavailable",
                peer=peer,
                host=host,
                tunnel=route.tunnel_id.text,
            )
            refuse(inbound, "entrypoint", prefix, Status.SERVICE_UNAVAILABLE)

        self.router.route(d, inbound, prefix, unavailable)
