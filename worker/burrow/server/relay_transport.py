"""The relay port over tls, ws or wss: each accepted connection is unwrapped, then read as usual.

burrow.net.layered does the TLS handshake and the WebSocket upgrade; what comes out is given to
a RelayHandshake exactly as a plain accepted connection would be (docs/transports.md).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import TYPE_CHECKING, cast

from burrow.common.logfmt import event
from burrow.config.plan_types import LISTEN_BACKLOG
from burrow.net.layered import LayeredAccept
from burrow.net.tls import server_context

if TYPE_CHECKING:
    from burrow.server.relay_server import RelayServer

log = logging.getLogger("burrow.relay")


async def serve_layered(server: RelayServer, listener: socket.socket) -> None:
    """Accept on ``listener`` until cancelled, unwrapping ``server.plan.transport``."""
    loop = asyncio.get_running_loop()
    plan = server.plan.transport
    try:
        ctx = server_context(plan, server.plan.name) if plan.uses_tls else None
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        event(log, logging.ERROR, "relay.tls_error", service=server.plan.name, error=str(exc),
              fix="check certFile, keyFile and caFile (PEM)")  # fmt: skip
        raise
    from burrow.server.relay_server import RelayHandshake  # a cycle at import time otherwise

    def handshake() -> asyncio.Protocol:
        h = RelayHandshake(loop, server)
        h.reject = server.reject  # h.cap stays None: admitted at accept, below
        # A BufferedProtocol that also takes data_received, which is all the layers call.
        return cast(asyncio.Protocol, h)

    def admit(t: asyncio.BaseTransport, peer: str) -> bool:
        cap = server.cap
        if cap is None:
            return True
        addr = t.get_extra_info("peername")
        why = cap.admit(t, str(addr[0]) if isinstance(addr, tuple) and addr else "")
        if why is not None:
            server.reject(logging.INFO, "inbound.refused", why, peer=peer)
        return why is None

    srv = await loop.create_server(
        lambda: LayeredAccept(plan, ctx, handshake, server.transport_failed, admit),
        sock=listener,
        backlog=LISTEN_BACKLOG,
    )
    event(log, logging.DEBUG, "relay.transport", service=server.plan.name, transport=plan.kind)
    try:
        await asyncio.Future()
    finally:
        srv.close()
