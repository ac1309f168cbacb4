"""Forward on miss: a connection for a tunnel held only by other cluster nodes goes there.

The membership view lists other nodes' connectors (``MembershipView.remote``, fed from Redis
by the supervisor). One forward is tried per node, up to what is left of the 3 attempts:

* ``node_kind == "burrow"``: mutual TLS to the node's advertise address (burrow.net.cluster_tls),
  a ForwardHeader and the bytes already read (burrow.proto.forward); the node answers ACCEPTED
  (then the stream's bytes follow: a visitor's relay reply, the HTTP response) or REFUSED (it has
  no connector any more: the next node is tried). A forward is never forwarded again.
* ``node_kind == "gost"``: plain TCP to the gost node's entry point, the first bytes replayed as
  gost nodes do: the HTTP head with ``Gost-Forwarded-Node``, the ClientHello, or the visitor's
  relay CONNECT. gost answers no acceptance, so the first successful dial is final.

Counted per service: ``forward_out``, ``forward_failed``, ``forward_in``, ``forward_refused``
(``burrow_forwards{outcome}``, docs/admin.md).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from burrow.common.logfmt import event, tunnel_ref
from burrow.config.cluster import ClusterPlan
from burrow.ipc.messages import ConnectorInfo
from burrow.net.layered import attach
from burrow.net.splice import SpliceLeg
from burrow.proto.addr import split_hostport
from burrow.proto.forward import ForwardHeader, encode_forward, with_forwarded_node
from burrow.routing.forward_select import forward_targets
from burrow.server.forward_links import CONNECT_TIMEOUT, Link, LinkPool, dial, nodelay
from burrow.server.inbound import Inbound
from burrow.server.pool import TunnelPool
from burrow.server.tls_front import TLS_KIND
from burrow.worker.stats import STATS

if TYPE_CHECKING:
    from burrow.server.router import Delivery

log = logging.getLogger("burrow.forward")

MAX_TURNS = 4096  # tunnels whose rotation is remembered


async def _ask(link: Link, data: bytes) -> bool:
    """Send a forward's opening bytes on ``link``; the node's answer (True: accepted)."""
    link.tls.write(data)
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            return await link.answer.wait()
    except BaseException:
        link.abort()
        raise


class Forwarder:
    """One worker's forwards to other cluster nodes."""

    def __init__(self, cluster: ClusterPlan, pool: TunnelPool) -> None:
        self.cluster = cluster
        self.pool = pool
        self.links = LinkPool(cluster.secret)
        self._turn: dict[tuple[str, str], int] = {}

    def nodes(self, d: Delivery, *, advance: bool = True) -> list[ConnectorInfo]:
        """One entry per other node holding the tunnel, rotated per tunnel (spreads the load)."""
        bus = self.pool.bus
        if bus is None:
            return []
        remote = bus.view.remote(d.tunnel_id.text, d.network)
        if not remote:
            return []
        key = (d.tunnel_id.text, d.network)
        turn = self._turn.get(key, 0)
        out = forward_targets(remote, self.cluster.node, turn)
        if advance and len(out) > 1:
            if len(self._turn) >= MAX_TURNS and key not in self._turn:
                self._turn.clear()  # a bound, not an LRU: rotation restarting is harmless
            self._turn[key] = turn + 1
        return out

    def reachable(self, d: Delivery) -> bool:
        """True when another node lists a connector for ``d``'s tunnel and network."""
        return bool(self.nodes(d, advance=False))

    def missed(self, d: Delivery) -> None:
        """No node has the tunnel: say why when the cluster store is unreachable."""
        bus = self.pool.bus
        if bus is not None and bus.view.cluster_down:
            event(log, logging.INFO, "forward.unavailable", tunnel=tunnel_ref(d.tunnel_id.text, log),
                  reason="the cluster store (Redis) is unreachable: other nodes' tunnels unknown",
                  peer=d.peer)  # fmt: skip

    async def forward(
        self,
        d: Delivery,
        inbound: Inbound,
        prefix: bytes,
        unavailable: Callable[[], None],
        attempts: int,
    ) -> None:
        """Forward to the first node that takes it, trying at most ``attempts`` nodes."""
        for info in self.nodes(d)[:attempts]:
            try:
                if await self._one(info, d, inbound, prefix):
                    STATS.count(d.service, "forward_out")
                    return
            except Exception as exc:  # noqa: BLE001 - a bad entry (address) must not leak the visitor
                event(log, logging.WARNING, "forward.failed", node=info.node, address=info.address,
                      tunnel=tunnel_ref(d.tunnel_id.text, log), error=str(exc) or repr(exc))  # fmt: skip
            STATS.count(d.service, "forward_failed")
        unavailable()

    async def _one(self, info: ConnectorInfo, d: Delivery, inbound: Inbound, prefix: bytes) -> bool:
        host, port = split_hostport(info.address)
        kind = "entrypoint" if d.kind == TLS_KIND else d.kind
        if d.kind == TLS_KIND:
            prefix = b""  # this node terminated TLS (entry-point certificate): plain HTTP follows
        loop = asyncio.get_running_loop()
        if info.node_kind == "gost":
            up = SpliceLeg("forward")
            async with asyncio.timeout(CONNECT_TIMEOUT):
                transport, _ = await loop.create_connection(lambda: up, host, port)
            nodelay(transport)
            transport.write(self._gost_bytes(d, kind, prefix))
            return await self._splice(transport, up, inbound, b"", info, d)
        header = ForwardHeader(
            node=self.cluster.node, kind=kind, tunnel=d.tunnel_id.text, network=d.network,
            peer=d.peer, target=d.target, reply=d.reply,
        )  # fmt: skip
        data = encode_forward(header, prefix)
        link = self.links.take(info.address)
        if link is not None:
            try:
                accepted = await _ask(link, data)
            except (OSError, ConnectionError, TimeoutError):
                link = None  # the node closed that ready link meanwhile: once more, fresh
        if link is None:
            link = await dial(self.cluster.secret, info.address)
            accepted = await _ask(link, data)
        if not accepted:
            link.tls.close()
            event(log, logging.INFO, "forward.refused", node=info.node,
                  tunnel=tunnel_ref(d.tunnel_id.text, log), reason="no connector there any more")  # fmt: skip
            return False
        up = SpliceLeg("forward")
        attach(link.tls, up)
        return await self._splice(link.tls, up, inbound, link.answer.rest, info, d)

    def _gost_bytes(self, d: Delivery, kind: str, prefix: bytes) -> bytes:
        if kind == "visitor":
            request = d.request.encode() if d.request is not None else b""
            return request + prefix
        if prefix[:1] == b"\x16":
            return prefix  # a ClientHello, replayed as is
        return with_forwarded_node(prefix, self.cluster.node)

    async def _splice(
        self,
        transport: asyncio.BaseTransport,
        up: SpliceLeg,
        inbound: Inbound,
        rest: bytes,
        info: ConnectorInfo,
        d: Delivery,
    ) -> bool:
        down = SpliceLeg("visitor")
        up.peer, down.peer = down, up
        if rest:
            down.pending.append(rest)
        if not await inbound.join(down):
            transport.close()  # the visitor left meanwhile: nothing to retry
        event(log, logging.DEBUG, "forward.open", node=info.node, kind=d.kind,
              tunnel=tunnel_ref(d.tunnel_id.text, log), peer=d.peer)  # fmt: skip
        return True
