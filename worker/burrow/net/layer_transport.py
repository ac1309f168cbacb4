"""LayerTransport: the byte stream a protocol layer (TLS, WebSocket) presents to the code above.

A *link* is the asyncio protocol on the connection below (``inner``); it decodes what arrives
and hands the payload to ``link.app``. The transport turns the app's writes into the layer's
records (``link.send``) and passes flow control straight to the connection below, so the relay
code (handshake reader, smux session, splice legs) runs on it unchanged.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol


class Link(Protocol):
    """What a layer's protocol offers its transport."""

    inner: asyncio.Transport
    app: asyncio.Protocol
    closing: bool

    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def send(self, data: bytes | bytearray | memoryview) -> None: ...
    def sendv(self, bufs: list[bytes | bytearray | memoryview]) -> None: ...
    def close(self) -> None: ...
    def extra(self, name: str, default: Any) -> Any: ...


class LayerTransport(asyncio.Transport):
    """Writes go through the link's layer; reading and buffering are the connection below's."""

    def __init__(self, link: Link, protocol: asyncio.Protocol) -> None:
        super().__init__()
        self._link = link
        self._protocol = protocol

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._link.send(data)

    def writelines(self, list_of_data: Any) -> None:
        self._link.sendv(list(list_of_data))

    def can_write_eof(self) -> bool:
        return False  # no half-close through a tunnel

    def write_eof(self) -> None:
        self.close()

    def close(self) -> None:
        self._link.close()

    def abort(self) -> None:
        self._link.closing = True
        self._link.inner.abort()

    def is_closing(self) -> bool:
        return self._link.closing or self._link.inner.is_closing()

    def pause_reading(self) -> None:
        self._link.pause_reading()

    def resume_reading(self) -> None:
        self._link.resume_reading()

    def is_reading(self) -> bool:
        return self._link.inner.is_reading()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._link.inner.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self) -> int:
        return self._link.inner.get_write_buffer_size()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._link.inner.get_write_buffer_limits()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol  # type: ignore[assignment]
        self._link.app = protocol  # type: ignore[assignment]

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._link.extra(name, default)
