"""Server-side TLS as a protocol layer: ``ssl.SSLObject`` over memory BIOs under a LayerTransport.

Why not ``loop.start_tls``: on uvloop 0.23 a server-side start_tls on an accepted connection
never completed its handshake here (the ClientHello was not processed), and
``create_server(ssl=...)`` only debug-logs failed handshakes, so an operator would never see
"plaintext on a TLS port" or "client sent no certificate". This layer does the handshake
itself: a deadline, a first-byte check for plaintext, and one clear reason on failure. The
record work is OpenSSL's (SSLObject.read/write); Python runs once per read and per write.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import Any, Final

from burrow.net.busypoll import poke
from burrow.net.layer_transport import LayerTransport
from burrow.net.tls import describe_failure

READ_CHUNK: Final = 256 * 1024
_TLS_HANDSHAKE: Final = 0x16  # content type of the first record of every ClientHello


class _Pending(asyncio.Protocol):
    """Placeholder app protocol until the handshake is done."""


class TlsLink(asyncio.Protocol):
    """The protocol on an accepted TCP connection of a TLS port."""

    def __init__(
        self,
        ctx: ssl.SSLContext,
        timeout: float,
        on_open: Callable[[LayerTransport], None],
        on_fail: Callable[[str], None],
    ) -> None:
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.incoming, self.outgoing, server_side=True)
        self.timeout = timeout
        self.on_open = on_open
        self.on_fail = on_fail
        self.inner: asyncio.Transport = None  # type: ignore[assignment]
        self.app: asyncio.Protocol = _Pending()
        self.open = False
        self.closing = False
        self._seen = False
        self._timer: asyncio.TimerHandle | None = None

    # -- below ------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.inner = transport  # type: ignore[assignment]
        self._timer = asyncio.get_running_loop().call_later(self.timeout, self._expired)

    def data_received(self, data: bytes) -> None:
        poke()
        if self.closing:
            return
        if not self._seen:
            self._seen = True
            if data[0] != _TLS_HANDSHAKE:
                return self._fail(
                    f"not TLS: the peer sent plaintext to a TLS port (first bytes {data[:8]!r})"
                )
        self.incoming.write(data)
        if not self.open and not self._handshake():
            return
        self._read()

    def eof_received(self) -> bool | None:
        if self.open:
            return self.app.eof_received()
        self._fail("peer closed during the TLS handshake")
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        if self.open:
            self.app.connection_lost(exc)
        elif not self.closing:
            self.closing = True
            self.on_fail("connection lost during the TLS handshake")

    def pause_writing(self) -> None:
        if self.open:
            self.app.pause_writing()

    def resume_writing(self) -> None:
        if self.open:
            self.app.resume_writing()

    # -- above ------------------------------------------------------------------------------
    def send(self, data: bytes) -> None:
        """Encrypt and write (dropped once closing, like a closed socket)."""
        if self.closing or not data:
            return
        try:
            self.obj.write(data)
        except ssl.SSLError:
            self.closing = True
            self.inner.abort()
            return
        self.inner.write(self.outgoing.read())

    def close(self) -> None:
        """close_notify, then close the connection below once flushed."""
        if self.closing:
            return
        self.closing = True
        if self.open:
            try:
                self.obj.unwrap()
            except ssl.SSLError:
                pass  # the peer's close_notify is not awaited
            self._flush()
        self.inner.close()

    def extra(self, name: str, default: Any) -> Any:
        """``ssl_object`` and ``peercert`` from the TLS session, the rest from below."""
        if name == "ssl_object":
            return self.obj
        if name == "peercert":
            return self.obj.getpeercert()
        if name == "cipher":
            return self.obj.cipher()
        return self.inner.get_extra_info(name, default)

    # -- internals --------------------------------------------------------------------------
    def _handshake(self) -> bool:
        try:
            self.obj.do_handshake()
        except ssl.SSLWantReadError:
            self._flush()
            return False
        except (ssl.SSLError, OSError) as exc:
            self._flush()  # the alert, so the peer learns why
            self._fail(describe_failure(exc, server_side=True))
            return False
        self._flush()
        self._stop_timer()
        self.open = True
        self.on_open(LayerTransport(self, self.app))
        return not self.closing

    def _read(self) -> None:
        chunks: list[bytes] = []
        eof = False
        obj = self.obj
        while True:
            try:
                chunk = obj.read(READ_CHUNK)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                eof = True
                break
            except ssl.SSLError:
                self.closing = True
                self.inner.abort()
                return
            if not chunk:
                eof = True
                break
            chunks.append(chunk)
        if self.outgoing.pending:
            self._flush()  # session tickets, key updates
        if chunks:
            self.app.data_received(chunks[0] if len(chunks) == 1 else b"".join(chunks))
        if eof and not self.closing:
            self.closing = True
            self.inner.close()

    def _flush(self) -> None:
        out = self.outgoing.read()
        if out:
            self.inner.write(out)

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
            self._fail("TLS handshake timed out")

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
