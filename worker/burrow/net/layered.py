"""Relay connections over tls, ws and wss: accepting on the relay port, dialing a chain node.

Accepting: the relay port's server accepts plain TCP (uvloop, in C) with :class:`LayeredAccept`
as the first protocol; it runs the TLS handshake (burrow.net.tls_link, bounded by the
transport's ``handshake_timeout``) and/or the WebSocket upgrade, then hands the resulting
transport to the relay handshake reader as if it had been accepted directly. A failure is one
log line (through the caller's ``failed``) and a close; no task per connection.

Dialing: :func:`dial` is ``loop.create_connection`` for every transport, with a TlsLink
(``serverName`` as SNI) and/or a :class:`~burrow.net.ws.WsLink` under the caller's protocol.

A connection with TLS or WebSocket state cannot be passed to another worker as a descriptor;
:func:`bridge_socket` gives a local socket pair end instead and splices the other end here.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable
from typing import Any, TypeVar

from burrow.config.plan_transport import TransportPlan
from burrow.net.layer_transport import LayerTransport
from burrow.net.splice import SpliceLeg
from burrow.proto.addr import join_hostport

P = TypeVar("P", bound=asyncio.BaseProtocol)
_RUNNING: set[asyncio.Task[Any]] = set()


def _peer(t: asyncio.BaseTransport) -> str:
    addr = t.get_extra_info("peername")
    if isinstance(addr, tuple) and len(addr) >= 2:
        return join_hostport(str(addr[0]), int(addr[1]))
    return ""


def attach(transport: asyncio.Transport, protocol: asyncio.Protocol, held: bytes = b"") -> None:
    """Give ``transport`` to ``protocol`` with the bytes read before it was ready."""
    transport.set_protocol(protocol)
    protocol.connection_made(transport)
    if held and not transport.is_closing():
        protocol.data_received(held)


class LayeredAccept(asyncio.Protocol):
    """First protocol of a connection accepted on a tls, ws or wss relay port."""

    def __init__(
        self,
        plan: TransportPlan,
        ctx: ssl.SSLContext | None,
        make: Callable[[], asyncio.Protocol],
        failed: Callable[[str, str], None],
        admit: Callable[[asyncio.BaseTransport, str], bool] | None = None,
    ) -> None:
        self.plan = plan
        self.ctx = ctx
        self.make = make
        self.failed = failed
        self.admit = admit
        self.peer = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        t: asyncio.Transport = transport  # type: ignore[assignment]
        self.peer = peer = _peer(t)
        # Counted against the connection caps now, before any handshake work.
        if self.admit is not None and not self.admit(t, peer):
            t.abort()
            return
        if self.ctx is None:
            self._upgrade(t, b"")
            return

        def opened(tls: LayerTransport) -> None:
            if self.plan.uses_ws:
                self._upgrade(tls, b"")
            else:
                attach(tls, self.make())

        from burrow.net.tls_link import TlsLink

        link = TlsLink(self.ctx, self.plan.handshake_timeout, opened,
                       lambda why: self.failed(peer, why))  # fmt: skip
        t.set_protocol(link)
        link.connection_made(t)

    def _upgrade(self, t: asyncio.Transport, held: bytes) -> None:
        peer = self.peer

        def opened(wst: LayerTransport) -> None:
            attach(wst, self.make())

        from burrow.net.ws import server_link

        link = server_link(
            self.plan.path, self.plan.handshake_timeout, opened, lambda why: self.failed(peer, why)
        )
        t.set_protocol(link)
        link.connection_made(t)
        if held:
            link.data_received(held)


async def dial(
    plan: TransportPlan, host: str, port: int, factory: Callable[[], P]
) -> tuple[asyncio.Transport, P]:
    """Connect to ``host:port`` over ``plan``'s transport; the caller bounds the time.

    Raises OSError or ConnectionError (a failed TLS handshake or upgrade: the message is the
    reason, e.g. :func:`~burrow.net.tls.describe_failure`'s line).
    """
    loop = asyncio.get_running_loop()
    if plan.kind == "tcp":
        return await loop.create_connection(factory, host, port)
    # Loaded on first use: a plain-TCP tunnel client or visitor never maps websockets (memory:
    # the one-process client's idle RSS, BENCHMARKS.md).
    from burrow.net.tls import client_context, server_hostname
    from burrow.net.tls_link import TlsLink
    from burrow.net.ws import client_link

    done: asyncio.Future[tuple[LayerTransport, P]] = loop.create_future()

    def top(t: LayerTransport) -> None:
        # Attached at once: a byte the server sends right after the handshake reaches it.
        protocol = factory()
        attach(t, protocol)  # type: ignore[arg-type]
        if not done.done():
            done.set_result((t, protocol))

    def failed(why: str) -> None:
        if not done.done():
            done.set_exception(ConnectionError(why))

    def ws(t: asyncio.Transport) -> None:
        link = client_link(plan.host or join_hostport(host, port), plan.path,
                           plan.handshake_timeout, top, failed)  # fmt: skip
        t.set_protocol(link)
        link.connection_made(t)

    if plan.uses_tls:
        on_tls = ws if plan.uses_ws else top
        first: Callable[[], asyncio.Protocol] = lambda: TlsLink(
            client_context(plan), plan.handshake_timeout, on_tls, failed,
            server_hostname=server_hostname(plan, host),
        )  # fmt: skip
    else:
        first = lambda: client_link(
            plan.host or join_hostport(host, port), plan.path, plan.handshake_timeout, top, failed
        )
    inner, _ = await loop.create_connection(first, host, port)
    try:
        return await done
    except BaseException:
        inner.abort()
        raise


def is_layered(t: asyncio.BaseTransport) -> bool:
    """True for a TLS or WebSocket transport (no descriptor to pass on)."""
    return isinstance(t, LayerTransport) or t.get_extra_info("ssl_object") is not None


def bridge_socket(t: asyncio.Transport) -> socket.socket:
    """A socket carrying ``t``'s byte stream: one end of a local pair, the other spliced to ``t``.

    For handing a TLS/WebSocket connection to another worker: that worker gets plain bytes,
    this one keeps the encryption or framing and copies between the two.
    """
    mine, theirs = socket.socketpair()
    mine.setblocking(False)
    theirs.setblocking(False)
    near, far = SpliceLeg("layered"), SpliceLeg("bridge")
    near.peer, far.peer = far, near
    t.pause_reading()
    attach(t, near)  # waits (paused) for the bridge leg, which resumes it

    async def connect() -> None:
        try:
            await asyncio.get_running_loop().connect_accepted_socket(lambda: far, mine)
        except OSError:
            mine.close()
            t.abort()

    task = asyncio.get_running_loop().create_task(connect(), name="layered-bridge")
    _RUNNING.add(task)
    task.add_done_callback(_RUNNING.discard)
    return theirs
