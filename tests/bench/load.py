"""Load generators (run on a uvloop loop in the benchmark process) and external tool runners.

HTTP clients are plain asyncio Protocols so the generator spends as little CPU as possible:
- ``closed_rps``: as many new-connection requests as ``concurrency`` workers can do;
- ``open_loop``: requests *started on a schedule* at a fixed rate, whatever the replies do;
  latency is taken from the scheduled start, so queueing (in the pool, the kernel or Burrow)
  shows; either a new connection per request or a pool of keep-alive connections with one
  request in flight each;
- ``ping_pong``: 1-byte round trips on one established connection (echo backend);
- ``conn_rate`` / ``hold``: TCP connections per second, and N connections held open.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ticker import Ticker

HOST = "127.0.0.1"
REQ_CLOSE = b"GET / HTTP/1.1\r\nHost: web.local\r\nConnection: close\r\n\r\n"
REQ_KEEP = b"GET / HTTP/1.1\r\nHost: web.local\r\n\r\n"
MAX_RESPONSE_BYTES = 65536
MAX_INFLIGHT = 4000  # new-connection mode: beyond this a scheduled request is counted as an error
REQUEST_TIMEOUT = 10.0
DRAIN_TIMEOUT = 15.0


def response_length(buf: bytes) -> int:
    """Length of the first complete HTTP response in ``buf`` (0 if incomplete); raises if bad."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        if len(buf) > MAX_RESPONSE_BYTES:
            raise ValueError("response head too long")
        return 0
    head = buf[:end].lower()
    if not head.startswith(b"http/1.1 200") and not head.startswith(b"http/1.0 200"):
        raise ValueError(f"bad status {buf[:40]!r}")
    m = re.search(rb"\r\ncontent-length:\s*(\d+)", head)
    if m is None:
        raise ValueError("no content-length")
    total = end + 4 + int(m.group(1))
    return total if len(buf) >= total else 0


class HttpConn(asyncio.Protocol):
    """One HTTP client connection; ``request`` sends one request and waits for its reply."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.waiter: asyncio.Future[None] | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        self.buf += data
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        try:
            n = response_length(self.buf)
        except ValueError as exc:
            waiter.set_exception(exc)
            return
        if n:
            if not self.buf[:n].endswith(b"ok"):
                waiter.set_exception(ValueError("bad body"))
                return
            self.buf = self.buf[n:]
            waiter.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc or ConnectionError("closed before the reply"))

    async def request(self, payload: bytes) -> None:
        """Send ``payload`` and wait for one complete ``ok`` response."""
        assert self.transport is not None
        if self.lost:
            raise ConnectionError("connection lost")
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(payload)
        await self.waiter

    def close(self) -> None:
        """Close the transport."""
        if self.transport is not None:
            self.transport.close()


async def connect(port: int) -> HttpConn:
    """A connected HttpConn to 127.0.0.1:``port``."""
    loop = asyncio.get_running_loop()
    _, proto = await loop.create_connection(HttpConn, HOST, port)
    return proto


async def fresh_request(port: int) -> None:
    """One request on a new connection (``Connection: close``)."""
    conn = await connect(port)
    try:
        await conn.request(REQ_CLOSE)
    finally:
        conn.close()


async def closed_rps(port: int, seconds: float, concurrency: int = 32) -> tuple[float, int]:
    """(requests/s, errors) with ``concurrency`` workers each doing new-connection requests."""
    done = errors = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done, errors
        while time.perf_counter() < deadline:
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    await fresh_request(port)
                done += 1
            except (OSError, ValueError, TimeoutError):
                errors += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done / (time.perf_counter() - t0), errors


async def sequential_latency(port: int, n: int) -> list[float]:
    """Latencies (s) of ``n`` new-connection requests, one after the other."""
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        async with asyncio.timeout(REQUEST_TIMEOUT):
            await fresh_request(port)
        out.append(time.perf_counter() - t0)
    return out


@dataclass
class RateResult:
    """Outcome of one open-loop run."""

    target: float
    achieved: float = 0.0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    lag: list[float] = field(default_factory=list)  # generator: actual start - scheduled start


async def open_loop(
    port: int,
    rate: float,
    count: int,
    keepalive: bool,
    pool: int = 32,
    on_mid: Callable[[], None] | None = None,
) -> RateResult:
    """Start ``count`` requests at ``rate``/s on a fixed schedule; latency from scheduled start."""
    loop = asyncio.get_running_loop()
    res = RateResult(target=rate)
    queue: asyncio.Queue[float] = asyncio.Queue()
    tasks: set[asyncio.Task[None]] = set()
    last_done = 0.0

    def finished(scheduled: float) -> None:
        nonlocal last_done
        last_done = time.perf_counter()
        res.latencies.append(last_done - scheduled)

    async def one_fresh(scheduled: float) -> None:
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                await fresh_request(port)
            finished(scheduled)
        except (OSError, ValueError, TimeoutError):
            res.errors += 1

    async def pooled(conn: HttpConn | None) -> None:
        while True:
            scheduled = await queue.get()
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    if conn is None or conn.lost:
                        conn = await connect(port)
                    await conn.request(REQ_KEEP)
                finished(scheduled)
            except (OSError, ValueError, TimeoutError):
                res.errors += 1
                if conn is not None:
                    conn.close()
                conn = None
            finally:
                queue.task_done()

    workers = []
    if keepalive:  # the pool is connected before the schedule starts
        async with asyncio.timeout(REQUEST_TIMEOUT):
            conns = await asyncio.gather(*(connect(port) for _ in range(pool)))
        workers = [loop.create_task(pooled(c)) for c in conns]
    mid = loop.call_later(count / rate / 2, on_mid) if on_mid is not None else None
    interval = 1.0 / rate
    t0 = time.perf_counter() + 0.01
    ticker = Ticker(t0, interval)
    i = 0
    try:
        while i < count:
            await ticker.wait_until(t0 + i * interval)
            now = time.perf_counter()
            # Everything due is started now; a late wake-up (busy loop) shows as lag and latency.
            while i < count and t0 + i * interval <= now:
                scheduled = t0 + i * interval
                res.lag.append(now - scheduled)
                i += 1
                if keepalive:
                    queue.put_nowait(scheduled)
                elif len(tasks) >= MAX_INFLIGHT:
                    res.errors += 1
                else:
                    task = loop.create_task(one_fresh(scheduled))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
        ticker.close()
        try:
            async with asyncio.timeout(DRAIN_TIMEOUT):
                if keepalive:
                    await queue.join()
                elif tasks:
                    await asyncio.wait(set(tasks))
        except TimeoutError:
            pass
    finally:
        ticker.close()
        if mid is not None:
            mid.cancel()
        for t in [*workers, *tasks]:
            t.cancel()
        await asyncio.gather(*workers, *tasks, return_exceptions=True)
    # The schedule spans count/rate s; a generator or path that falls behind stretches it.
    span = max(count / rate, last_done - t0)
    res.achieved = len(res.latencies) / span
    res.errors = count - len(res.latencies)  # failed, refused, or still unanswered at the end
    return res


class Echo(asyncio.Protocol):
    """Echo client: ``round_trip`` writes bytes and waits until as many came back."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.want = 0
        self.waiter: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        self.want -= len(data)
        if self.want <= 0 and self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc or ConnectionError("echo closed"))

    async def round_trip(self, data: bytes = b"x") -> None:
        """Write ``data`` and wait for its echo."""
        assert self.transport is not None
        self.want = len(data)
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        await self.waiter


async def echo_conn(port: int) -> Echo:
    """A connected Echo client that already did one round trip (so the path is set up)."""
    _, proto = await asyncio.get_running_loop().create_connection(Echo, HOST, port)
    async with asyncio.timeout(REQUEST_TIMEOUT):
        await proto.round_trip()
    return proto


async def ping_pong(port: int, n: int, warmup: int = 300) -> list[float]:
    """Latencies (s) of ``n`` 1-byte round trips on one established connection."""
    async with asyncio.timeout(REQUEST_TIMEOUT):
        conn = await echo_conn(port)
    out = []
    try:
        async with asyncio.timeout(REQUEST_TIMEOUT + n * 0.01):
            for _ in range(warmup):
                await conn.round_trip()
            for _ in range(n):
                t0 = time.perf_counter()
                await conn.round_trip()
                out.append(time.perf_counter() - t0)
    finally:
        assert conn.transport is not None
        conn.transport.close()
    return out


async def conn_rate(port: int, seconds: float, concurrency: int = 32) -> float:
    """New TCP connections/s, one byte echoed on each, ``concurrency`` at a time."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                conn = await echo_conn(port)
            assert conn.transport is not None
            conn.transport.close()
            done += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done / (time.perf_counter() - t0)


async def hold(port: int, n: int, concurrency: int = 50) -> list[Echo]:
    """Open ``n`` echo connections (one round trip each) and return them still open."""
    conns: list[Echo] = []

    async def worker(k: int) -> None:
        for _ in range(k):
            conns.append(await echo_conn(port))

    per = [n // concurrency + (1 if i < n % concurrency else 0) for i in range(concurrency)]
    async with asyncio.timeout(60):
        await asyncio.gather(*(worker(k) for k in per if k))
    return conns


def release(conns: list[Echo]) -> None:
    """Close connections returned by ``hold``."""
    for c in conns:
        if c.transport is not None:
            c.transport.close()


def iperf(port: int, *extra: str, seconds: int) -> float:
    """iperf3 client to 127.0.0.1:``port``; Gbit/s received."""
    out = subprocess.run(
        ["iperf3", "-c", HOST, "-p", str(port), "-t", str(seconds), "-J", *extra],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=False,
    )
    data = json.loads(out.stdout)
    if "error" in data:
        raise RuntimeError(data["error"])
    end = data["end"]
    summary = end.get("sum_received") or end.get("sum")
    return float(summary["bits_per_second"]) / 1e9


def iperf_udp(port: int, rate: str, seconds: int, window: str = "") -> tuple[float, int, int]:
    """iperf3 UDP (``-b rate -l 1400``) to 127.0.0.1:``port``; (Gbit/s received, lost, total).

    ``window`` (e.g. "4M"): iperf3 ``-w``, the socket buffers of both iperf3 ends (the server
    takes the client's setting), so a receiver that falls behind for a moment drops less."""
    extra = ["-w", window] if window else []
    out = subprocess.run(
        ["iperf3", "-c", HOST, "-p", str(port), "-t", str(seconds), "-J", "-u", "-b", rate,
         "-l", "1400", *extra], capture_output=True, text=True, timeout=seconds + 30, check=False,
    )  # fmt: skip
    data = json.loads(out.stdout)
    if "error" in data:
        raise RuntimeError(data["error"])
    end = data["end"]
    s = end["sum"]  # the receiver's report: lost and total datagrams
    bps = (end.get("sum_received") or s)["bits_per_second"]
    return float(bps) / 1e9, int(s["lost_packets"]), int(s["packets"])


def wrk(port: int, seconds: int, connections: int = 32) -> tuple[float, int]:
    """(requests/s, errors) of ``wrk -t1 -cN`` keep-alive against 127.0.0.1:``port``."""
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-H", "Host: web.local",
         f"http://{HOST}:{port}/"], capture_output=True, text=True, timeout=seconds + 30, check=False,
    )  # fmt: skip
    m = re.search(r"Requests/sec:\s+([\d.]+)", out.stdout)
    if m is None:
        raise RuntimeError(f"wrk: {out.stdout[-500:]} {out.stderr[-500:]}")
    errors = 0
    if e := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out.stdout):
        errors += int(e.group(1))
    if e := re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out.stdout
    ):
        errors += sum(int(x) for x in e.groups())
    return float(m.group(1)), errors
