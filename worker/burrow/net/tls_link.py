"""TLS as a protocol layer: ``ssl.SSLObject`` over memory BIOs under a LayerTransport.

Why not ``loop.start_tls``: on uvloop 0.23 a server-side start_tls on an accepted connection
never completed its handshake here (the ClientHello was not processed), and
``create_server(ssl=...)`` only debug-logs failed handshakes, so an operator would never see
"plaintext on a TLS port" or "client sent no certificate". This layer does the handshake
itself: a deadline, a first-byte check for plaintext, and one clear reason on failure. The
record work is OpenSSL's (SSLObject.read/write); Python runs once per read and per write.
The dialer uses it too (``server_hostname`` set): measured, its reads cost less than uvloop's
client-side SSL transport, and failures read the same on both ends.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import Any, Final, cast

from burrow.net.busypoll import poke
from burrow.net.layer_transport import LayerTransport
from burrow.net.link_base import HandshakeLink
from burrow.net.recv_buffer import RecvBuffers
from burrow.net.tls import describe_failure

# The most plaintext one record holds: the read buffer's room beyond the ciphertext waiting,
# for a record OpenSSL had already half-read from an earlier socket read.
READ_CHUNK: Final = 16384
# Plaintext encrypted per SSLObject.write: keeps the memory BIO and each ciphertext buffer small
# (one large write grew the BIO and allocated its whole output at once; measured slower).
WRITE_CHUNK: Final = 65536
# Parts handed to a reader other than the smux parser (it gets bytes, and may pause between).
DELIVER_BYTES: Final = 65536
_TLS_HANDSHAKE: Final = 0x16  # content type of the first record of every ClientHello


class TlsLink(HandshakeLink):
    """The protocol on a TCP connection of a TLS port (accepted, or dialed: server_hostname)."""

    TIMED_OUT = "TLS handshake timed out"

    def __init__(
        self,
        ctx: ssl.SSLContext,
        timeout: float,
        on_open: Callable[[LayerTransport], None],
        on_fail: Callable[[str], None],
        *,
        server_hostname: str | None = None,
    ) -> None:
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.server_side = server_hostname is None
        self.obj = ctx.wrap_bio(
            self.incoming,
            self.outgoing,
            server_side=self.server_side,
            server_hostname=server_hostname or None,
        )
        super().__init__(timeout, on_open, on_fail)
        self._seen = False
        self._answered = False  # our ServerHello and certificate went out
        # Records decrypted while the app had paused reading, delivered when it resumes.
        self._backlog: list[bytes] = []
        self._buffers = RecvBuffers()
        self._paused = False

    # -- below ------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if not self.server_side:
            self._seen = True
            self._handshake()  # the ClientHello

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

    # -- above ------------------------------------------------------------------------------
    def pause_reading(self) -> None:
        """Stop reading below; records already decrypted wait in the backlog."""
        self._paused = True
        self.inner.pause_reading()

    def resume_reading(self) -> None:
        """Deliver the backlog (on the next loop turn, not inside the caller), then read again."""
        self._paused = False
        if self._backlog:
            asyncio.get_running_loop().call_soon(self._deliver, None)
        self.inner.resume_reading()

    def send(self, data: bytes | bytearray | memoryview) -> None:
        """Encrypt and write (dropped once closing, like a closed socket)."""
        self.sendv([data])

    def sendv(self, bufs: list[bytes | bytearray | memoryview]) -> None:
        """Encrypt and write several buffers; small ones share records, none is joined whole."""
        if self.closing:
            return
        obj, outgoing = self.obj, self.outgoing
        out: list[bytes] = []
        group: list[bytes | bytearray | memoryview] = []
        size = 0
        try:
            for buf in bufs:
                n = len(buf)
                if n >= WRITE_CHUNK:
                    if group:
                        obj.write(b"".join(group) if len(group) > 1 else group[0])
                        group, size = [], 0
                    view = memoryview(buf)
                    for i in range(0, n, WRITE_CHUNK):
                        obj.write(view[i : i + WRITE_CHUNK])
                        out.append(outgoing.read())
                    continue
                group.append(buf)
                size += n
                if size >= WRITE_CHUNK:
                    obj.write(b"".join(group))
                    out.append(outgoing.read())
                    group, size = [], 0
            if group:
                obj.write(b"".join(group) if len(group) > 1 else group[0])
            if outgoing.pending:
                out.append(outgoing.read())
        except ssl.SSLError:
            self.closing = True
            self.inner.abort()
            return
        if out:
            self.inner.writelines(out)

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
            self._answered |= self._flush()
            return False
        except (ssl.SSLError, OSError) as exc:
            self._flush()  # the alert, so the peer learns why
            self._fail(describe_failure(exc, server_side=self.server_side))
            return False
        self._flush()
        self._stop_timer()
        self.open = True
        self.on_open(LayerTransport(self, self.app))
        return not self.closing

    def _read(self) -> None:
        # Records are decrypted straight into one buffer per socket read (no bytes per record,
        # no join), sized by the ciphertext waiting: plaintext is never longer, plus one record
        # OpenSSL may hold half-read. The smux parser then takes it in one call.
        obj = self.obj
        size = self.incoming.pending + obj.pending() + READ_CHUNK
        view = memoryview(self._buffers.take(size))[:size]
        filled = 0
        eof = False
        while True:
            try:
                # With a buffer, read returns a count (typeshed says bytes).
                n = cast(int, obj.read(size - filled, view[filled:]))
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                eof = True
                break
            except ssl.SSLError:
                self.closing = True
                self.inner.abort()
                return
            if not n:
                eof = True
                break
            filled += n
            if filled == size:  # more than the estimate: deliver this one, read on
                self._deliver(view)
                view = memoryview(self._buffers.take(size))[:size]
                filled = 0
        if self.outgoing.pending:
            self._flush()  # session tickets, key updates
        if filled:
            self._deliver(view[:filled])
        if eof and not self.closing:
            self.closing = True
            self.inner.close()

    def _deliver(self, data: memoryview | None) -> None:
        # The tunnel's smux parser (``takes_views``) takes the view of the read buffer as
        # it is; any other app (the relay request reader, which pauses and hands the
        # transport on after the request) gets bytes, and a pause keeps the rest for the next.
        if self._backlog:
            if data is not None:
                self._backlog.append(bytes(data))
            data = memoryview(b"".join(self._backlog))
            self._backlog = []
        if data is None or self.closing:
            return
        if self._paused:
            self._backlog.append(bytes(data))
            return
        app = self.app
        if getattr(app, "takes_views", False):
            app.data_received(data)  # type: ignore[arg-type]  # it takes memoryviews
            return
        # One copy per part, straight from the read buffer (slicing a bytes remainder
        # each time copied a 256 KiB read about 2.5 times over).
        n = len(data)
        for i in range(0, n, DELIVER_BYTES):
            self.app.data_received(bytes(data[i : i + DELIVER_BYTES]))
            if self.closing:
                return
            if self._paused:
                if i + DELIVER_BYTES < n:
                    self._backlog.append(bytes(data[i + DELIVER_BYTES :]))
                return

    def _flush(self) -> bool:
        out = self.outgoing.read()
        if out:
            self.inner.write(out)
        return bool(out)

    def lost_why(self, eof: bool) -> str:
        if self._answered and self.server_side:
            # Clients (uvloop's among them) often just close when our certificate fails them.
            return (
                "peer closed during the TLS handshake, after our certificate (does it trust "
                "it? check the client's caFile and serverName)"
            )
        return "peer closed during the TLS handshake"
