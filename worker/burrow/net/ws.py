"""WebSocket framing under the relay protocol (gost's ``ws``/``wss``), as an asyncio transport.

Binary messages carry the relay byte stream both ways, as gost's ws listener and dialer do. The
codec is the sans-IO core of the ``websockets`` library (its C extension masks and unmasks);
:class:`WsLink` is the protocol on the TCP or TLS connection below, and a
:class:`~burrow.net.layer_transport.LayerTransport` is what the relay code above sees: a byte-stream transport like any other, so the handshake
reader, the smux session and the splice legs run on it unchanged. Measured against wsproto's
codec (BENCHMARKS.md, "Transports"): about 12x the bytes per CPU second, mostly the masking.
"""

from __future__ import annotations

import asyncio
import os
import struct
from collections.abc import Callable
from typing import Any

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.uri import parse_uri

try:
    from websockets.speedups import apply_mask
except ImportError:  # websockets built without its C extension
    from websockets.utils import apply_mask

from burrow.net.busypoll import poke
from burrow.net.layer_transport import LayerTransport
from burrow.net.link_base import HandshakeLink

_DATA = (Opcode.BINARY, Opcode.CONT, Opcode.TEXT)
# A peer's message is buffered whole before it is delivered: bounded, so one frame header
# cannot make a worker allocate without limit (a bigger one closes the WebSocket, 1009).
MAX_MESSAGE = 16 * 1024 * 1024
# What this side puts in one message (gost's peers read any size): below glibc's mmap
# threshold (128 KiB), so a client's masked copy comes from the heap, not from a fresh mapping.
SEND_MESSAGE = 64 * 1024
_FIN_BINARY = 0x82


def _header(size: int, key: bytes) -> bytes:
    """RFC 6455 frame header: FIN, binary, the payload length, and the mask key if any."""
    bit = 0x80 if key else 0
    if size < 126:
        return struct.pack("!BB", _FIN_BINARY, bit | size) + key
    if size < 65536:
        return struct.pack("!BBH", _FIN_BINARY, bit | 126, size) + key
    return struct.pack("!BBQ", _FIN_BINARY, bit | 127, size) + key


class WsLink(HandshakeLink):
    """The protocol on the connection below: upgrade, then frames <-> the app's byte stream."""

    TIMED_OUT = "WebSocket upgrade timed out"

    def lost_why(self, eof: bool) -> str:
        """The peer closed, or the connection was lost, before the upgrade was done."""
        if eof:
            return "peer closed during the WebSocket upgrade"
        return "connection lost during the WebSocket upgrade"

    def __init__(
        self,
        proto: ServerProtocol | ClientProtocol,
        timeout: float,
        on_open: Callable[[LayerTransport], None],
        on_fail: Callable[[str], None],
    ) -> None:
        super().__init__(timeout, on_open, on_fail)
        self.proto = proto
        # The server's path check; set by server_link.
        self.path = ""
        self._masks = isinstance(proto, ClientProtocol)  # RFC 6455: clients mask every frame

    # -- below ------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if isinstance(self.proto, ClientProtocol):
            self._flush()  # the upgrade request, queued by client_link

    def data_received(self, data: bytes) -> None:
        poke()
        proto = self.proto
        proto.receive_data(data)
        events = proto.events_received()
        if not self.open:
            self._handshake(events)
            return
        out = proto.data_to_send()
        if out:
            self._write_out(out)
        # One read for everything that arrived: the reader above may hand the transport on
        # after the first message (a relay request), and the rest must follow it there.
        chunks = [ev.data for ev in events if type(ev) is Frame and ev.opcode in _DATA and ev.data]
        if chunks:
            self.app.data_received(chunks[0] if len(chunks) == 1 else b"".join(chunks))  # type: ignore[arg-type]

    # -- above ------------------------------------------------------------------------------
    def pause_reading(self) -> None:
        """Stop reading below (each read is delivered whole, so nothing is held here)."""
        self.inner.pause_reading()

    def resume_reading(self) -> None:
        """Read below again."""
        self.inner.resume_reading()

    def extra(self, name: str, default: Any) -> Any:
        """Transport extra info: the connection below's."""
        return self.inner.get_extra_info(name, default)

    def send(self, data: bytes | bytearray | memoryview) -> None:
        """Binary messages (dropped once the WebSocket is closing, like a closed socket)."""
        self.sendv([data])

    def sendv(self, bufs: list[bytes | bytearray | memoryview]) -> None:
        """Binary messages of about SEND_MESSAGE bytes for ``bufs``, framed here.

        Data frames bypass the library's serializer (a BytesIO copy of each message, and one
        join of a whole writelines made allocations big enough for glibc to mmap and unmap
        them each time: page faults, measured). A server's frames go out as a header and the
        buffers themselves; a client masks each message once (websockets' C apply_mask).
        """
        if self.proto.state is not State.OPEN:
            return
        out: list[bytes | bytearray | memoryview] = []
        group: list[bytes | bytearray | memoryview] = []
        size = 0
        for buf in bufs:
            n = len(buf)
            if n > SEND_MESSAGE:
                if group:
                    self._frame(out, group, size)
                    group, size = [], 0
                view = memoryview(buf)
                for i in range(0, n, SEND_MESSAGE):
                    part = view[i : i + SEND_MESSAGE]
                    self._frame(out, [part], len(part))
                continue
            if n:
                group.append(buf)
                size += n
                if size >= SEND_MESSAGE:
                    self._frame(out, group, size)
                    group, size = [], 0
        if group:
            self._frame(out, group, size)
        if out:
            self.inner.writelines(out)

    def _frame(
        self,
        out: list[bytes | bytearray | memoryview],
        parts: list[bytes | bytearray | memoryview],
        size: int,
    ) -> None:
        if self._masks:
            key = os.urandom(4)
            out.append(_header(size, key))
            out.append(apply_mask(parts[0] if len(parts) == 1 else b"".join(parts), key))
        else:
            out.append(_header(size, b""))
            out.extend(parts)

    def close(self) -> None:
        """Close frame, then the connection below once it is flushed."""
        if self.closing:
            return
        self.closing = True
        if self.proto.state is State.OPEN:
            self.proto.send_close(1000)
            self._write_out(self.proto.data_to_send())
        self.inner.close()

    # -- internals --------------------------------------------------------------------------
    def _write_out(self, out: list[bytes]) -> None:
        eof = b"" in out  # the library's "close the TCP connection now"
        self.inner.writelines([b for b in out if b])
        if eof or self.proto.close_expected():
            self.closing = True
            self.inner.close()

    def _flush(self) -> None:
        self.inner.writelines([b for b in self.proto.data_to_send() if b])

    def _handshake(self, events: list[Any]) -> None:
        proto = self.proto
        for ev in events:
            if isinstance(ev, Request) and isinstance(proto, ServerProtocol):
                return self._accept(proto, ev)
            if isinstance(ev, Response):
                if proto.state is not State.OPEN:
                    exc = proto.handshake_exc
                    return self._fail(f"WebSocket upgrade refused: {exc or ev.status_code}")
                return self._opened()
        if isinstance(proto, ServerProtocol) and proto.handshake_exc is not None:
            self._fail(f"bad WebSocket upgrade request: {proto.handshake_exc}")

    def _accept(self, proto: ServerProtocol, req: Request) -> None:
        path = req.path.partition("?")[0]
        if path != self.path:
            proto.send_response(proto.reject(404, "404 page not found\n"))
            self._flush()
            return self._fail(
                f"WebSocket upgrade to the wrong path {path!r} (serving {self.path!r})"
            )
        response = proto.accept(req)
        if response.status_code != 101:
            # gost's listener answers 400 to a request that is not an upgrade (websockets: 426).
            proto.send_response(proto.reject(400, "Bad Request\n"))
            self._flush()
            return self._fail(f"bad WebSocket upgrade request: {proto.handshake_exc}")
        proto.send_response(response)
        self._flush()
        self._opened()

    def _opened(self) -> None:
        self._stop_timer()
        self.open = True
        app = self.app
        wst = LayerTransport(self, app)
        self.on_open(wst)


def server_link(
    path: str,
    timeout: float,
    on_open: Callable[[LayerTransport], None],
    on_fail: Callable[[str], None],
) -> WsLink:
    """A link that answers one upgrade to ``path`` (404 for any other path, 400 for no upgrade)."""
    link = WsLink(ServerProtocol(max_size=MAX_MESSAGE), timeout, on_open, on_fail)
    link.path = path
    return link


def client_link(
    host: str,
    path: str,
    timeout: float,
    on_open: Callable[[LayerTransport], None],
    on_fail: Callable[[str], None],
) -> WsLink:
    """A link that sends the upgrade for ``path`` with ``Host: host`` when connected."""
    proto = ClientProtocol(parse_uri(f"ws://{host}{path}"), max_size=MAX_MESSAGE)
    request = proto.connect()
    proto.send_request(request)
    return WsLink(proto, timeout, on_open, on_fail)
