"""Public entry point: sniff HTTP Host / TLS SNI, look up the ingress, route.

See docs/architecture.md, Flows (a).

Routing happens once per visitor connection, then the connection is piped: WebSockets and
streaming responses keep working, but unlike rc-era gost (which re-routed every HTTP request)
later requests on a keep-alive connection go to the same tunnel.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import TYPE_CHECKING

from burrow.common.logfmt import event, tunnel_ref
from burrow.config.plan_types import RelayServerPlan
from burrow.net.conncap import ConnectionCap
from burrow.net.rejectlog import RejectLog
from burrow.proto.errors import ProtocolError
from burrow.proto.relay import Status, parse_request
from burrow.proto.sniff import MAX_SNIFF_BYTES, NEED_MORE, Sniffed, Sniffer
from burrow.routing.entry_decision import EntryRefuse, decide_entry
from burrow.routing.ingress import Ingress
from burrow.routing.refusal import NO_CLIENT, PRIVATE, Refusal, sanitize_host
from burrow.server.access_log import ACCESS
from burrow.server.certstore import CertStore
from burrow.server.entry_redirect import redirect_reply
from burrow.server.inbound import Handshake, Inbound, serve_handshakes
from burrow.server.proxy_accept import gate_for
from burrow.server.router import Delivery, Router, refuse
from burrow.server.tls_front import TLS_KIND, TlsFront, TlsInbound
from burrow.worker.stats import STATS

if TYPE_CHECKING:
    from burrow.server.relay_server import RelayServer

log = logging.getLogger("burrow.entrypoint")


class SniffHandshake(Handshake):
    """Collects the HTTP head or TLS ClientHello (bounded in size and time), then routes."""

    __slots__ = ("entry", "sniffer")

    def __init__(self, loop: asyncio.AbstractEventLoop, entry: EntryPoint) -> None:
        super().__init__(loop, entry.plan.sniff_timeout)
        self.entry = entry
        self.gate = entry.proxy_gate
        self.sniffer = Sniffer()  # resumes where the last read stopped: linear in bytes

    def inspect(self) -> None:
        buf = self.buf
        relay = self.entry.internal
        if relay is not None and buf[0] == 1:
            return self._relay_connect(relay)
        result = self.sniffer.feed(buf)
        if result is NEED_MORE and len(buf) < MAX_SNIFF_BYTES:
            return
        found = result if isinstance(result, Sniffed) else None
        prefix = bytes(buf)
        self.entry.route(self.finish(), prefix, found)

    def _relay_connect(self, relay: RelayServer) -> None:
        """A gost node's forwarded relay CONNECT (internal listener): the relay server routes it."""
        try:
            parsed = parse_request(self.buf, capped=True)
        except ProtocolError as exc:
            self.entry.reject(logging.INFO, "relay.rejected", str(exc), peer=self.peer)
            return self._drop()
        if parsed is not None:
            req, used = parsed
            relay.dispatch(self.finish(), req, bytes(self.buf[used:]), forwarded=True)

    def give_up(self, why: str) -> None:
        outcome = "sniff_timeout" if why == "timeout" else "closed"
        STATS.count(self.entry.plan.name, "entry_" + outcome)
        self.entry.access(self.peer, "", outcome, len(self.buf))
        self.entry.route(self.finish(), bytes(self.buf), None, counted=True)


class EntryPoint:
    """Serves one entry point address of a relay/tunnel server service."""

    def __init__(
        self,
        plan: RelayServerPlan,
        router: Router,
        cap: ConnectionCap | None = None,
        internal: RelayServer | None = None,
    ) -> None:
        self.plan = plan
        # The cluster-internal listener (gost nodes' forwards): also relay CONNECTs, and nothing
        # it routes is forwarded again.
        self.internal = internal
        self.router = router
        self.cap = cap
        self.reject = RejectLog(log)
        self.ingress = Ingress(plan.ingress_rules)
        self.proxy_gate = gate_for(plan.proxy_protocol, plan.proxy_trusted)
        self.certs = CertStore(plan.entry_tls)
        router.tls_hooks[plan.name] = self.tls_inbound

    def update(self, plan: RelayServerPlan) -> None:
        """Take a reloaded plan (same listeners): new ingress rules and options from now on."""
        self.plan = plan
        self.ingress = Ingress(plan.ingress_rules)
        self.proxy_gate = gate_for(plan.proxy_protocol, plan.proxy_trusted)
        self.certs.reload(plan.entry_tls)

    def tls_inbound(self, inbound: Inbound, hello: bytes) -> Inbound | None:
        """``inbound`` wrapped to terminate TLS with the certificate its ClientHello names.

        None when no certificate (any more) covers that name: the connection is closed.
        """
        found = Sniffer().feed(hello)
        name = found.host if isinstance(found, Sniffed) and found.protocol == "tls" else ""
        ctx = self.certs.context_for(name) if name else None
        if ctx is None:
            return None
        front = TlsFront(
            ctx, hello, name, inbound.peer, self.plan.entry_tls_handshake_timeout, self.reject
        )
        return TlsInbound(front, transport=inbound.transport, sock=inbound.sock, peer=inbound.peer)

    async def serve(self, listener: socket.socket) -> None:
        """Accept until cancelled; each connection starts as a SniffHandshake."""
        await serve_handshakes(
            listener, lambda loop: SniffHandshake(loop, self), self.cap, self.reject
        )

    def route(
        self, inbound: Inbound, prefix: bytes, found: Sniffed | None, *, counted: bool = False
    ) -> None:
        """Route a sniffed connection (or refuse it); never raises.

        ``counted``: its outcome is already in the stats (the sniff gave up)."""
        try:
            self._route(inbound, prefix, found, counted)
        except Exception as exc:  # noqa: BLE001 - one connection must never take the worker down
            event(log, logging.WARNING, "entrypoint.error", peer=inbound.peer, error=repr(exc))
            inbound.close()

    def _route(self, inbound: Inbound, prefix: bytes, found: Sniffed | None, counted: bool) -> None:
        peer = inbound.peer
        if self.certs and found is not None and found.protocol == "http":
            reply = redirect_reply(found.host, prefix, self.certs)
            if reply is not None:
                inbound.send(reply)
                inbound.close()
                return
        decision = decide_entry(found, self.ingress, self.plan.dialect)
        if isinstance(decision, EntryRefuse):
            why = Refusal(decision.code, decision.host)
            if not counted:
                STATS.count(self.plan.name, f"entry_{why.http_status}")
                self.access(peer, decision.host, str(why.http_status), len(prefix))
            self._refused(decision.event or "entrypoint.refused", why, peer, decision.host)
            return refuse(inbound, "entrypoint", prefix, decision.status, why)
        host, tunnel_id = decision.host, decision.tunnel_id
        kind = "entrypoint"
        if self.certs and found is not None and found.protocol == "tls":
            tls = self.tls_inbound(inbound, prefix)
            if tls is not None:
                inbound, kind = tls, TLS_KIND
        d = Delivery(
            kind=kind,
            service=self.plan.name,
            tunnel_id=tunnel_id,
            network="tcp",
            dialect=self.plan.dialect,
            peer=peer,
            target=decision.target,
            reply=-1,
            forwarded=self.internal is not None,
        )

        def unavailable() -> None:
            STATS.count(self.plan.name, "entry_503")
            self.access(peer, host, "503", len(prefix), tunnel_id.text)
            why = Refusal(NO_CLIENT, host)
            self._refused("entrypoint.unavailable", why, peer, host, tunnel_id.text)
            refuse(inbound, "entrypoint", prefix, Status.SERVICE_UNAVAILABLE, why)

        self.router.route(d, inbound, prefix, unavailable)

    def access(self, peer: str, host: str, outcome: str, up: int, tunnel: str = "") -> None:
        """The access line of a connection that was refused or gave up before a stream."""
        if ACCESS.wants(self.plan.name):
            ACCESS.finished(
                service=self.plan.name, kind="entrypoint", tunnel=tunnel,
                host=sanitize_host(host) if host else "", source=peer, target="", connector="",
                up=up, down=0, duration=0.0, outcome=outcome,
            )  # fmt: skip

    def _refused(self, name: str, why: Refusal, peer: str, host: str, tunnel: str = "") -> None:
        """One info line per refusal, a few per reason per 10 s (then a summary line)."""
        fields = {"host": sanitize_host(host), "peer": peer, "status": why.http_status}
        if tunnel:
            fields["tunnel"] = tunnel_ref(tunnel, log)
        elif why.code == PRIVATE:
            route = self.ingress.lookup(host)
            if route is not None:
                fields["tunnel"] = tunnel_ref(route.tunnel_id.text, log)
        self.reject(logging.INFO, name, why.reason, **fields)
