"""TLS termination for one entry-point visitor, in the worker that holds the tunnel.

The entry point has already read the ClientHello to route by SNI, so the handshake continues
from those bytes through an ``ssl.SSLObject`` over memory BIOs (stdlib ssl; uvloop's
``start_tls`` cannot take bytes already read). :class:`TlsFront` is the accepted transport's
protocol and, towards the stream pipe, a transport of plain bytes (:class:`PlainSide`):
decrypted request bytes go through :class:`~burrow.proto.http_forward.RequestRewriter` into the
pipe, the pipe's writes are encrypted onto the socket.

Why here and not before routing: a visitor reaching a worker that does not hold the tunnel is
handed over as a socket (burrow.server.handoff); a TLS session cannot move between processes,
so the ClientHello travels with the socket (kind ``entrypoint-tls``) and the owner terminates.
The stream is opened before the handshake ends: a failed handshake closes an empty stream.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from burrow.net.rejectlog import RejectLog
from burrow.proto.addr import split_hostport
from burrow.proto.http_forward import ForwardError, RequestRewriter
from burrow.server.inbound import Inbound

TLS_KIND = "entrypoint-tls"  # Delivery/HandoffHeader kind of a connection to terminate
_READ = 256 * 1024


class PlainSide(asyncio.Transport):
    """What the pipe sees: a transport of plain bytes over the TLS session."""

    __slots__ = ("_front",)

    def __init__(self, front: TlsFront) -> None:
        super().__init__()
        self._front = front

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._front.send(data)

    def close(self) -> None:
        self._front.shutdown()

    def abort(self) -> None:
        self._front.abort()

    def is_closing(self) -> bool:
        raw = self._front.raw
        return raw is None or raw.is_closing()

    def pause_reading(self) -> None:
        if self._front.raw is not None:
            self._front.raw.pause_reading()

    def resume_reading(self) -> None:
        if self._front.raw is not None:
            self._front.raw.resume_reading()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        if self._front.raw is not None:
            self._front.raw.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self) -> int:
        raw = self._front.raw
        return 0 if raw is None else raw.get_write_buffer_size()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "ssl_object":
            return self._front.tls
        raw = self._front.raw
        return default if raw is None else raw.get_extra_info(name, default)


class TlsFront(asyncio.Protocol):
    """Server side of one visitor's TLS session, feeding a downstream protocol plain bytes."""

    def __init__(
        self,
        context: ssl.SSLContext,
        hello: bytes,
        server_name: str,
        peer: str,
        timeout: float,
        reject: RejectLog,
    ) -> None:
        self._in, self._out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self._in, self._out, server_side=True)
        self._hello = hello
        self.server_name = server_name
        self.peer = peer
        self._timeout = timeout
        self._reject = reject
        host = split_hostport(peer)[0] if peer else ""
        self._rewriter = RequestRewriter(host or "unknown", server_name)
        self.raw: asyncio.Transport | None = None
        self.downstream: asyncio.Protocol | None = None
        self._plain = PlainSide(self)
        self._timer: asyncio.TimerHandle | None = None
        self._up = False  # handshake done, downstream connected
        self._closing = False

    # -- raw side ---------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.raw = transport  # type: ignore[assignment]
        if self._timeout > 0:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self._timeout, self._expired)
        hello, self._hello = self._hello, b""
        self.data_received(hello)

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        self._in.write(data)
        if not self._up and not self._handshake():
            return
        self._read()

    def eof_received(self) -> bool | None:
        self._in.write_eof()
        if self._up:
            self._read()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        self.raw = None
        self._closing = True
        down, self.downstream = self.downstream, None
        if down is not None:
            down.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._up and self.downstream is not None:
            self.downstream.pause_writing()

    def resume_writing(self) -> None:
        if self._up and self.downstream is not None:
            self.downstream.resume_writing()

    # -- TLS --------------------------------------------------------------------------------
    def _handshake(self) -> bool:
        try:
            self.tls.do_handshake()
        except ssl.SSLWantReadError:
            self._flush()
            return False
        except (ssl.SSLError, OSError) as exc:
            self._flush()  # the alert, if the library made one
            why = getattr(exc, "reason", None) or type(exc).__name__
            self._fail("entrypoint.tls_failed", f"handshake failed: {why}")
            return False
        self._stop_timer()
        self._up = True
        self._flush()
        if self.downstream is not None:
            self.downstream.connection_made(self._plain)
        return True

    def _read(self) -> None:
        while not self._closing:
            try:
                chunk = self.tls.read(_READ)
            except ssl.SSLWantReadError:
                break
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                chunk = b""  # close_notify, or (as most clients do) a close without one
            except (ssl.SSLError, OSError) as exc:
                why = getattr(exc, "reason", None) or type(exc).__name__
                self._fail("entrypoint.tls_failed", f"TLS error: {why}")
                return
            if not chunk:
                self.shutdown()  # no half-close across smux (burrow.net.pipe): close both
                return
            try:
                out = self._rewriter.feed(chunk)
            except ForwardError as exc:
                self._bad_request(exc)
                return
            if out and self.downstream is not None:
                self.downstream.data_received(out)
            if not self._in.pending and not self.tls.pending():
                break  # nothing left to decrypt: skip the read that would raise SSLWantReadError
        self._flush()

    def _bad_request(self, exc: ForwardError) -> None:
        if self._rewriter.requests == 0:
            # Only before any backend answer is on its way, or it could interleave with one.
            phrase = HTTPStatus(exc.status).phrase
            body = f"{exc.status} {phrase}: {exc.reason}\n".encode()
            self.send(
                f"HTTP/1.1 {exc.status} {phrase}\r\nContent-Type: text/plain\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
        self._fail("entrypoint.tls_refused", exc.reason, status=str(exc.status))

    def _fail(self, name: str, reason: str, **fields: str) -> None:
        self._reject(logging.INFO, name, reason, host=self.server_name, peer=self.peer, **fields)
        self.shutdown()

    def _expired(self) -> None:
        self._timer = None
        if not self._up:
            self._reject(logging.INFO, "entrypoint.tls_failed", "handshake timeout",
                         host=self.server_name, peer=self.peer)  # fmt: skip
            self.abort()

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _flush(self) -> None:
        raw = self.raw
        if raw is not None and self._out.pending:
            raw.write(self._out.read())

    # -- plain side (called through PlainSide) ----------------------------------------------
    def send(self, data: bytes | bytearray | memoryview) -> None:
        """Encrypt ``data`` onto the socket."""
        if self._closing or not data:
            return
        try:
            self.tls.write(data)
        except (ssl.SSLError, OSError):
            self.abort()
            return
        self._flush()

    def shutdown(self) -> None:
        """close_notify, then close the socket once what is written is flushed."""
        if self._closing:
            return
        self._closing = True
        self._stop_timer()
        if self._up:
            try:
                self.tls.unwrap()
            except (ssl.SSLError, OSError):
                pass  # SSLWantReadError: the peer's close_notify is not awaited
        self._flush()
        if self.raw is not None:
            self.raw.close()

    def abort(self) -> None:
        self._closing = True
        self._stop_timer()
        if self.raw is not None:
            self.raw.abort()


class TlsInbound(Inbound):
    """An entry-point connection whose TLS is terminated here once a stream takes it."""

    __slots__ = ("front",)

    def __init__(
        self,
        front: TlsFront,
        *,
        transport: asyncio.Transport | None = None,
        sock: socket.socket | None = None,
        peer: str = "",
    ) -> None:
        super().__init__(transport=transport, sock=sock, peer=peer)
        self.front = front

    def adopt(self, protocol: asyncio.Protocol) -> bool:
        t = self.transport
        if t is None or t.is_closing():
            return False
        self.front.downstream = protocol
        t.set_protocol(self.front)
        t.resume_reading()
        self.front.connection_made(t)
        return True

    async def join(self, protocol: asyncio.Protocol) -> bool:
        if self.transport is not None:
            return self.adopt(protocol)
        sock = self.sock
        if sock is None:
            return False
        self.front.downstream = protocol
        front = self.front
        try:
            await asyncio.get_running_loop().connect_accepted_socket(lambda: front, sock)
        except OSError:
            sock.close()
            return False
        return True


FrontFactory = Callable[[bytes, str, str], TlsFront | None]
