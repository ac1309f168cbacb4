"""Bulk HTTP through the entry point (which takes HTTP and TLS only, so iperf3 cannot enter).

``python3 bulk.py serve`` is the backend: uvloop, prints ``PORTS port=<n>``; ``POST /up`` with a
Content-Length reads the body and answers 200, ``GET /down/<n>`` sends n bytes.
:func:`upload` and :func:`download` run the load in a child process (blocking sockets, 256 KiB
writes), so the bench process's own work is not counted against Burrow; each returns Gbit/s
for about ``seconds`` (sized from a short warm-up run on the same path).
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time

CHUNK = 256 * 1024
_DATA = memoryview(b"\x5a" * CHUNK)


class Backend(asyncio.Protocol):
    """One connection: HTTP/1.1 heads, bodies counted, never stored."""

    def __init__(self) -> None:
        self.buf = b""
        self.left = 0  # body bytes of the current POST still to come
        self.send_left = 0
        self.paused = False
        self.t: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.left:
            take = min(self.left, len(data))
            self.left -= take
            data = data[take:]
            if self.left == 0:
                self._reply(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            if not data:
                return
        self.buf += data
        while b"\r\n\r\n" in self.buf and not self.left:
            head, _, rest = self.buf.partition(b"\r\n\r\n")
            self.buf = b""
            line = head.split(b"\r\n", 1)[0].split()
            if line[0] == b"POST":
                length = next(
                    int(h.split(b":", 1)[1])
                    for h in head.split(b"\r\n")
                    if h.lower().startswith(b"content-length:")
                )
                self.left = length
                if rest:
                    self.data_received(rest)
            else:
                n = int(line[1].rsplit(b"/", 1)[1])
                self._reply(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % n)
                self.send_left = n
                self._pump()

    def _reply(self, head: bytes) -> None:
        assert self.t is not None
        self.t.write(head)

    def _pump(self) -> None:
        t = self.t
        while t is not None and self.send_left and not self.paused:
            n = min(CHUNK, self.send_left)
            t.write(_DATA[:n])
            self.send_left -= n

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self._pump()

    def connection_lost(self, exc: Exception | None) -> None:
        self.t = None


async def _serve() -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Backend, "127.0.0.1", 0)
    print(f"PORTS port={server.sockets[0].getsockname()[1]}", flush=True)
    await loop.run_in_executor(None, sys.stdin.read)  # until the bench closes our stdin


def _head_end(s: socket.socket) -> bytes:
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the reply")
        buf += chunk
    return buf


def _up(port: int, host: str, total: int) -> float:
    """Gbit/s of one POST of ``total`` bytes, until its 200 reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        began = time.perf_counter()
        s.sendall(
            b"POST /up HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n" % (host.encode(), total)
        )
        left = total
        while left:
            n = min(CHUNK, left)
            s.sendall(_DATA[:n])
            left -= n
        head = _head_end(s)
        assert head.startswith(b"HTTP/1.1 200"), head[:64]
        return total * 8 / (time.perf_counter() - began) / 1e9


def _down(port: int, host: str, total: int) -> float:
    """Gbit/s of one GET of ``total`` bytes."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        began = time.perf_counter()
        s.sendall(b"GET /down/%d HTTP/1.1\r\nHost: %s\r\n\r\n" % (total, host.encode()))
        buf = _head_end(s)
        got = len(buf.partition(b"\r\n\r\n")[2])
        sink = bytearray(CHUNK)
        while got < total:
            n = s.recv_into(sink)
            if not n:
                raise ConnectionError(f"closed after {got} of {total} bytes")
            got += n
        return total * 8 / (time.perf_counter() - began) / 1e9


def _run(kind: str, port: int, host: str, seconds: float) -> tuple[float, int]:
    fn = _up if kind == "up" else _down
    warm = fn(port, host, 64 << 20)
    total = max(64 << 20, int(warm / 8 * 1e9 * seconds))
    return fn(port, host, total), total + (64 << 20)


def measure(kind: str, port: int, host: str, seconds: float) -> tuple[float, int]:
    """Gbit/s of one ``up`` (POST) or ``down`` (GET) transfer, in a child process, and the
    bytes moved in all (with the warm-up)."""
    out = subprocess.run(
        [sys.executable, __file__, kind, str(port), host, str(seconds)],
        capture_output=True, text=True, timeout=seconds * 4 + 60, check=True,
    )  # fmt: skip
    gbps, total = out.stdout.split()[-2:]
    return float(gbps), int(total)


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        import uvloop

        uvloop.run(_serve())
    else:
        print(*_run(sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])))
