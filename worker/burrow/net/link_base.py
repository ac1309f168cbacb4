"""What the TLS and WebSocket layers share: a handshake under a deadline, then a pass-through.

A link is the protocol on the connection below. Until its handshake is done the app above is a
placeholder and any failure ends in one ``on_fail(reason)``; once open, flow control and the
connection's end are handed up to the app.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from burrow.net.layer_transport import LayerTransport


class _Pending(asyncio.Protocol):
    """Placeholder app protocol until the handshake is done."""


class HandshakeLink(asyncio.Protocol):
    """Base of TlsLink and WsLink: deadline, failure reporting, flow control passed up."""

    TIMED_OUT = "handshake timed out"

    def __init__(
        self,
        timeout: float,
        on_open: Callable[[LayerTransport], None],
        on_fail: Callable[[str], None],
    ) -> None:
        self.timeout = timeout
        self.on_open = on_open
        self.on_fail = on_fail
        self.inner: asyncio.Transport = None  # type: ignore[assignment]
        self.app: asyncio.Protocol = _Pending()
        self.open = False
        self.closing = False
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.inner = transport  # type: ignore[assignment]
        self._timer = asyncio.get_running_loop().call_later(self.timeout, self._expired)

    def lost_why(self, eof: bool) -> str:
        """Why the handshake failed: the peer closed (``eof``) or the connection was lost."""
        raise NotImplementedError

    def eof_received(self) -> bool | None:
        if self.open:
            return self.app.eof_received()
        self._fail(self.lost_why(eof=True))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        if self.open:
            self.app.connection_lost(exc)
        elif not self.closing:
            self.closing = True
            self.on_fail(self.lost_why(eof=False))

    def pause_writing(self) -> None:
        if self.open:
            self.app.pause_writing()

    def resume_writing(self) -> None:
        if self.open:
            self.app.resume_writing()

    def _fail(self, why: str) -> None:
        self._stop_timer()
        if self.closing:
            return
        self.closing = True
        self.inner.close()
        self.on_fail(why)

    def _expired(self) -> None:
        self._timer = None
        if not self.open:
            self._fail(self.TIMED_OUT)

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
