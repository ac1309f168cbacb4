"""Loopback backends in their own process: ``python3 tests/bench/backends.py``.

Runs, on one uvloop event loop with plain asyncio Protocols (no streams, so the backend costs as
little as possible):
- an HTTP/1.1 server answering every request with a fixed 2-byte body ``ok``; it keeps the
  connection alive unless the request says ``Connection: close`` (or is HTTP/1.0 without
  keep-alive), and answers pipelined requests in order;
- a TCP echo server.
Prints ``PORTS http=<port> echo=<port>`` on stdout once both listen, and exits on SIGTERM or
when its stdin closes (so it never outlives the benchmark).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import uvloop

MAX_HEAD_BYTES = 16384
BODY = b"ok"
REPLY_KEEP = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\n" + BODY
REPLY_CLOSE = (
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n"
    b"Connection: close\r\n\r\n" + BODY
)


def wants_close(head: bytes) -> bool:
    """Whether a request head (without the blank line) asks for the connection to be closed."""
    low = head.lower()
    if b"\r\nconnection: close" in low or b"\r\nconnection:close" in low:
        return True
    first = low.split(b"\r\n", 1)[0]
    return first.endswith(b"http/1.0") and b"\r\nconnection: keep-alive" not in low


class HttpBackend(asyncio.Protocol):
    """One HTTP connection: answer each complete request head with the fixed reply."""

    __slots__ = ("buf", "transport")

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        transport = self.transport
        assert transport is not None
        buf = self.buf + data if self.buf else data
        out: list[bytes] = []
        while (end := buf.find(b"\r\n\r\n")) >= 0:
            head, buf = buf[:end], buf[end + 4 :]
            if wants_close(head):
                out.append(REPLY_CLOSE)
                transport.writelines(out)
                transport.close()
                self.buf = b""
                return
            out.append(REPLY_KEEP)
        if out:
            transport.writelines(out)
        if len(buf) > MAX_HEAD_BYTES:
            transport.close()
            buf = b""
        self.buf = buf

    def eof_received(self) -> bool:
        return False


class EchoBackend(asyncio.Protocol):
    """One echo connection: write back whatever arrives."""

    __slots__ = ("transport",)

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def eof_received(self) -> bool:
        return False


async def serve() -> None:
    """Start both servers, report their ports, run until told to stop."""
    loop = asyncio.get_running_loop()
    http = await loop.create_server(HttpBackend, "127.0.0.1", 0, backlog=4096)
    echo = await loop.create_server(EchoBackend, "127.0.0.1", 0, backlog=4096)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)

    def stdin_readable() -> None:
        if not os.read(sys.stdin.fileno(), 4096):
            stop.set()

    loop.add_reader(sys.stdin.fileno(), stdin_readable)
    hport = http.sockets[0].getsockname()[1]
    eport = echo.sockets[0].getsockname()[1]
    print(f"PORTS http={hport} echo={eport} pid={os.getpid()}", flush=True)
    await stop.wait()
    http.close()
    echo.close()


def main() -> int:
    """Entry point."""
    uvloop.run(serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
