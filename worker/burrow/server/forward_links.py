"""Member links: TLS connections to another node's relay port, dialed ahead of the forwards.

A forward needs a TCP connection and a mutual TLS handshake (about 2 ms of CPU on each end,
BENCHMARKS.md). While forwards go to a node, this worker keeps :data:`READY` such links to it
open with the handshake done, so a forward only writes its header and waits for the answer byte.
A link is used once (it becomes that visitor's connection); a ready link unused for
:data:`READY_AGE` seconds is closed (the receiving node would drop it after its relay read
timeout, 15 s by default) and not replaced until the next forward to that node.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass, field

from burrow.common.logfmt import event
from burrow.net.cluster_tls import cluster_context
from burrow.net.layer_transport import LayerTransport
from burrow.net.layered import attach
from burrow.net.tls_link import TlsLink
from burrow.proto.addr import split_hostport
from burrow.proto.forward import ACCEPTED, CLUSTER_NAME
from burrow.server.inbound import spawn

log = logging.getLogger("burrow.forward")

CONNECT_TIMEOUT = 5.0  # dial + TLS handshake, and then the answer byte, each
READY = 2  # links kept open per node while forwards go there
READY_AGE = 5.0


def nodelay(transport: asyncio.BaseTransport) -> None:
    """Small writes (handshake, header, the answer byte) must not wait for delayed ACKs."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass


class Answer(asyncio.Protocol):
    """Reads the receiving node's one-byte answer; what follows it is the stream's."""

    def __init__(self) -> None:
        self.result: asyncio.Future[bool] | None = None
        self.lost = False
        self.rest = b""

    def wait(self) -> asyncio.Future[bool]:
        """The answer (True: accepted); ConnectionError when the node closes first."""
        if self.result is None:
            self.result = asyncio.get_running_loop().create_future()
            if self.lost:
                self.result.set_exception(ConnectionError("the node closed the link"))
        return self.result

    def data_received(self, data: bytes) -> None:
        result = self.result
        if result is None or result.done():
            self.rest += data
            return
        self.rest = data[1:]
        result.set_result(data[:1] == ACCEPTED)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        # Only a waiter gets the error: a ready link closed while unused is just discarded.
        if self.result is not None and not self.result.done():
            self.result.set_exception(ConnectionError("the node closed without answering"))


@dataclass(eq=False)
class Link:
    """One member TLS connection, handshake done, its answer not yet read."""

    raw: asyncio.Transport
    tls: LayerTransport
    answer: Answer
    born: float
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)

    def usable(self, now: float) -> bool:
        return not self.answer.lost and not self.tls.is_closing() and now - self.born < READY_AGE

    def abort(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.raw.abort()


async def dial(secret: str, address: str) -> Link:
    """A new member link to ``address``; OSError, ConnectionError or TimeoutError."""
    host, port = split_hostport(address)
    loop = asyncio.get_running_loop()
    opened: asyncio.Future[LayerTransport] = loop.create_future()

    def on_open(t: LayerTransport) -> None:
        if not opened.done():
            opened.set_result(t)

    def on_fail(why: str) -> None:
        if not opened.done():
            opened.set_exception(ConnectionError(f"TLS to the node: {why}"))

    ctx = cluster_context(secret, server=False)
    raw: asyncio.Transport | None = None
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            raw, _ = await loop.create_connection(
                lambda: TlsLink(ctx, CONNECT_TIMEOUT, on_open, on_fail,
                                server_hostname=CLUSTER_NAME),
                host, port,
            )  # fmt: skip
            nodelay(raw)
            tls = await opened
    except BaseException:
        if raw is not None:
            raw.abort()
        raise
    answer = Answer()
    attach(tls, answer)  # at once: nothing the node sends may be missed
    return Link(raw, tls, answer, loop.time())


class LinkPool:
    """Ready member links by node address, refilled by use."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self._ready: dict[str, list[Link]] = {}
        self._dialing: dict[str, int] = {}

    def take(self, address: str) -> Link | None:
        """A ready link to ``address`` (None: dial one), and dial replacements meanwhile."""
        links = self._ready.get(address, [])
        now = asyncio.get_running_loop().time()
        found = None
        while links and found is None:
            link = links.pop()
            if link.usable(now):
                if link.timer is not None:
                    link.timer.cancel()
                found = link
            else:
                link.abort()
        if not links:
            self._ready.pop(address, None)
        self._refill(address)
        return found

    def _refill(self, address: str) -> None:
        want = READY - len(self._ready.get(address, ())) - self._dialing.get(address, 0)
        for _ in range(want):
            self._dialing[address] = self._dialing.get(address, 0) + 1
            spawn(self._ready_one(address), "forward-link")

    async def _ready_one(self, address: str) -> None:
        try:
            link = await dial(self.secret, address)
        except (OSError, ConnectionError, TimeoutError) as exc:
            event(log, logging.DEBUG, "forward.link_failed", address=address, error=str(exc))
            return
        finally:
            left = self._dialing.get(address, 1) - 1
            if left > 0:
                self._dialing[address] = left
            else:
                self._dialing.pop(address, None)
        loop = asyncio.get_running_loop()
        link.timer = loop.call_later(READY_AGE, self._expire, address, link)
        self._ready.setdefault(address, []).append(link)

    def _expire(self, address: str, link: Link) -> None:
        link.timer = None
        links = self._ready.get(address)
        if links is not None and link in links:
            links.remove(link)
            if not links:
                del self._ready[address]
        link.abort()

    def close(self) -> None:
        """Drop every ready link."""
        for links in self._ready.values():
            for link in links:
                link.abort()
        self._ready.clear()
