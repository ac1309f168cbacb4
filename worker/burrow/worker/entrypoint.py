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
from burrow.config.plan import RelayServerPlan
from burrow.proto.relay import Status
from burrow.proto.sniff import MAX_SNIFF_BYTES, NEED_MORE, Sniffed, http_host_port, sniff
from burrow.routing.ingress import Ingress
from burrow.worker.router import Delivery, Router, refuse
from burrow.worker.sockio import accept_loop, peer_name

log = logging.getLogger("burrow.entrypoint")


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
        """Accept loop; each connection is handled in its own task."""
        await accept_loop(listener, self.handle, "entrypoint-conn")

    async def _sniff(self, sock: socket.socket) -> tuple[bytes, Sniffed | None]:
        loop = asyncio.get_running_loop()
        buf = b""
        try:
            async with asyncio.timeout(self.plan.sniff_timeout):
                while len(buf) < MAX_SNIFF_BYTES:
                    chunk = await loop.sock_recv(sock, MAX_SNIFF_BYTES - len(buf))
                    if not chunk:
                        break
                    buf += chunk
                    result = sniff(buf)
                    if result is NEED_MORE:
                        continue
                    return buf, result if isinstance(result, Sniffed) else None
        except TimeoutError:
            pass
        return buf, None

    async def handle(self, sock: socket.socket) -> None:
        """Sniff, route, pipe; never raises."""
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = peer_name(sock)
        try:
            prefix, found = await self._sniff(sock)
        except OSError:
            sock.close()
            return
        try:
            await self._route(sock, peer, prefix, found)
        except Exception as exc:  # noqa: BLE001 - one connection must never take the worker down
            event(log, logging.WARNING, "entrypoint.error", peer=peer, error=repr(exc))
            sock.close()

    async def _route(self, sock: socket.socket, peer: str, prefix: bytes,
                     found: Sniffed | None) -> None:
        if found is None or not found.host:
            event(log, logging.DEBUG, "entrypoint.unroutable", peer=peer, reason="no host sniffed")
            return refuse(sock, "entrypoint", prefix, Status.NETWORK_UNREACHABLE)
        try:
            host, port = http_host_port(found.host, 80 if found.protocol == "http" else 443)
        except ValueError:
            return refuse(sock, "entrypoint", prefix, Status.NETWORK_UNREACHABLE)
        route = self.ingress.lookup(host)
        if route is None or route.tunnel_id.is_zero or route.private:
            why = "private tunnel" if route is not None and route.private else "no ingress rule"
            event(log, logging.DEBUG, "entrypoint.refused", peer=peer, host=host, reason=why)
            return refuse(sock, "entrypoint", prefix, Status.HOST_UNREACHABLE)
        if self.plan.dialect == "relay" and found.protocol == "tls":
            port = 0  # rc-era servers send the SNI with port 0 (tunnel-mode.md §5.4)
        d = Delivery(kind="entrypoint", service=self.plan.name, tunnel_id=route.tunnel_id,
                     network="tcp", dialect=self.plan.dialect, peer=peer,
                     target=f"{host}:{port}" if ":" not in host else f"[{host}]:{port}",
                     reply=-1)
        if not await self.router.deliver(d, sock, prefix):
            event(log, logging.DEBUG, "entrypoint.unavailable", peer=peer, host=host,
                  tunnel=route.tunnel_id.text)
            refuse(sock, "entrypoint", prefix, Status.SERVICE_UNAVAILABLE)
