"""Forwards arriving from other cluster nodes on the relay port.

A relay request starts with 0x01; a TLS ClientHello with 0x16. On a cluster node's plain-TCP
relay port the latter is a member's forward: the handshake is mutual TLS with the cluster
certificate (burrow.net.cluster_tls), so a peer without the secret fails it and is closed with a
``forward.rejected`` line. Then a ForwardHeader and the bytes the first node read
(burrow.proto.forward). The connection is routed to this node's connectors only
(``Delivery.forwarded``): a node with a stale entry never sends it on, so a forward makes one
hop whatever the two nodes believe about each other.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import TYPE_CHECKING, cast

from burrow.common.ids import TunnelId
from burrow.common.logfmt import event, tunnel_ref
from burrow.config.cluster import ClusterPlan
from burrow.net.cluster_tls import cluster_context
from burrow.net.layer_transport import LayerTransport
from burrow.net.layered import attach
from burrow.net.tls_link import TlsLink
from burrow.proto.errors import ProtocolError
from burrow.proto.forward import ACCEPTED, REFUSED, decode_forward
from burrow.proto.relay import Status
from burrow.server.inbound import Handshake
from burrow.server.router import Delivery, refuse
from burrow.worker.stats import STATS

if TYPE_CHECKING:
    from burrow.server.relay_server import RelayServer

log = logging.getLogger("burrow.forward")

TLS_RECORD = 0x16
HANDSHAKE_TIMEOUT = 10.0


class ForwardHandshake(Handshake):
    """Reads the ForwardHeader inside the cluster TLS, then routes locally (or refuses)."""

    __slots__ = ("server",)

    def __init__(self, loop: asyncio.AbstractEventLoop, server: RelayServer) -> None:
        super().__init__(loop, server.read_timeout)
        self.server = server

    def inspect(self) -> None:
        try:
            parsed = decode_forward(self.buf)
            if parsed is None:
                return
            header, used = parsed
            tid = TunnelId.parse(header.tunnel)
        except (ProtocolError, ValueError) as exc:
            self.server.reject(logging.WARNING, "forward.rejected", str(exc), peer=self.peer)
            return self._drop()
        prefix = bytes(self.buf[used:])
        inbound = self.finish()
        inbound.peer = header.peer  # the visitor, for the stream header and access lines
        server = self.server
        name = server.plan.name
        STATS.count(name, "forward_in")
        d = Delivery(
            kind=header.kind, service=name, tunnel_id=tid, network=header.network,
            dialect=server.plan.dialect, peer=header.peer, target=header.target,
            reply=header.reply, forwarded=True,
        )  # fmt: skip
        if not server.pool.candidates(tid, header.network):
            STATS.count(name, "forward_refused")
            event(log, logging.INFO, "forward.refused", node=header.node,
                  tunnel=tunnel_ref(tid.text, log), network=header.network,
                  reason="no connector of this tunnel on this node")  # fmt: skip
            inbound.send(REFUSED)
            inbound.close()
            return
        inbound.send(ACCEPTED)
        event(log, logging.DEBUG, "forward.in", node=header.node, kind=header.kind,
              tunnel=tunnel_ref(tid.text, log), peer=header.peer)  # fmt: skip

        def unavailable() -> None:
            STATS.count(name, "forward_refused")
            refuse(inbound, header.kind, prefix, Status.SERVICE_UNAVAILABLE)

        server.router.route(d, inbound, prefix, unavailable)

    def give_up(self, why: str) -> None:
        if not self.buf:  # a member's ready link it closed unused (burrow.server.forward_links)
            event(log, logging.DEBUG, "forward.link_closed", peer=self.peer, why=why)
            return self._drop()
        self.server.reject(logging.INFO, "forward.rejected", f"no forward header ({why})",
                           peer=self.peer)  # fmt: skip
        self._drop()


def take_forward(server: RelayServer, cluster: ClusterPlan, h: Handshake) -> None:
    """Turn a relay handshake that saw a ClientHello into the member TLS server side."""
    h.done = True
    h._stop_timer()
    t = h.transport
    assert t is not None
    peer = h.peer
    loop = h.loop
    sock = t.get_extra_info("socket")
    if sock is not None:  # the answer byte and small replies must not wait for delayed ACKs
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def opened(tls: LayerTransport) -> None:
        # A BufferedProtocol that also takes data_received, which is all a layer calls.
        attach(tls, cast(asyncio.Protocol, ForwardHandshake(loop, server)))

    def failed(why: str) -> None:
        server.reject(logging.WARNING, "forward.rejected",
                      f"not a cluster member (TLS: {why})", peer=peer)  # fmt: skip

    link = TlsLink(cluster_context(cluster.secret, server=True), HANDSHAKE_TIMEOUT, opened, failed)
    t.set_protocol(link)
    link.connection_made(t)
    link.data_received(bytes(h.buf))
