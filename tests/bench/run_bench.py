"""Burrow benchmarks, run on demand: `python3 tests/bench/run_bench.py [--workers 1 2] [--quick]`.

Every figure is measured twice in the same run, once direct on loopback and once through
Burrow, and printed with the ratio, so the numbers mean something on any machine:
- iperf3 TCP, 1 and 4 streams, and UDP: full tunnel path (iperf3 client -> visitor -> server ->
  tunnel client -> iperf3 server);
- iperf3 TCP through the public entry point is not possible (iperf3 is not HTTP/TLS), so the
  entry point is measured with HTTP: requests per second with a new connection per request, and
  latency percentiles of sequential requests (added latency = Burrow median - direct median);
- connections per second through a visitor (TCP echo, one byte each way);
- RSS of the server (supervisor + workers) and of the client, idle and with 1,000 open streams.
Never part of CI's pass/fail.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

TID = "22f43305-42f7-4232-bbbc-aa6c042e3bc3"


def free_port() -> int:
    """A free port for an external peer (iperf3 cannot bind port 0 and report it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Proc:
    """A started process with its log file."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.log = log
        self.fh = open(log, "w")
        self.p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.fh, text=True,
                                  start_new_session=True)

    def ready(self, timeout: float = 20.0) -> dict[str, str]:
        assert self.p.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.p.stdout.readline()
            if line.startswith("READY"):
                return dict(re.findall(r"(\S+?)=(\S+)", line))
            if not line:
                break
        raise RuntimeError(f"no READY line: {self.log.read_text()[-2000:]}")

    def pids(self) -> list[int]:
        out = subprocess.run(["pgrep", "-g", str(self.p.pid)], capture_output=True, text=True)
        return [int(x) for x in out.stdout.split()]

    def rss_mb(self) -> float:
        total = 0
        for pid in self.pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except OSError:
                pass
        return total / 1024

    def stop(self) -> None:
        try:
            os.killpg(self.p.pid, signal.SIGTERM)
            self.p.wait(10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.fh.close()
        if self.p.stdout is not None:
            self.p.stdout.close()


def burrow(args: list[str], log: Path) -> Proc:
    return Proc([sys.executable, "-m", "burrow.supervisor", *args], log)


def wait_log(path: Path, needle: str, count: int = 1, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.read_text().count(needle) >= count:
            return
        time.sleep(0.05)
    raise RuntimeError(f"{needle!r} x{count} not in {path}: {path.read_text()[-2000:]}")


def iperf(port: int, *extra: str, seconds: int) -> float:
    out = subprocess.run(["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", str(seconds), "-J",
                          *extra], capture_output=True, text=True, timeout=seconds + 30)
    data = json.loads(out.stdout)
    if "error" in data:
        raise RuntimeError(data["error"])
    end = data["end"]
    summary = end.get("sum_received") or end.get("sum")
    return float(summary["bits_per_second"]) / 1e9


# --- a tiny HTTP backend and load generators -----------------------------------------------------

async def serve(handle: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
                port_holder: list[int], stop: asyncio.Event) -> None:
    """Run a loopback backend on an ephemeral port (reported in ``port_holder``) until ``stop``."""
    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=4096)
    port_holder.append(server.sockets[0].getsockname()[1])
    await stop.wait()
    server.close()


HTTP_REPLY = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


async def http_backend(port_holder: list[int], stop: asyncio.Event) -> None:
    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            await r.readuntil(b"\r\n\r\n")
            w.write(HTTP_REPLY)
            await w.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        w.close()

    await serve(handle, port_holder, stop)


async def one_request(port: int) -> float:
    t0 = time.perf_counter()
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(b"GET / HTTP/1.1\r\nHost: web.local\r\n\r\n")
    data = await r.read()
    w.close()
    if not data.endswith(b"ok"):
        raise RuntimeError(f"bad reply {data[:80]!r}")
    return time.perf_counter() - t0


async def rps(port: int, seconds: float, concurrency: int = 32) -> float:
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await asyncio.wait_for(one_request(port), 10)
            done += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done / (time.perf_counter() - t0)


async def latencies(port: int, n: int) -> list[float]:
    return [await asyncio.wait_for(one_request(port), 10) for _ in range(n)]


async def echo_backend(port_holder: list[int], stop: asyncio.Event) -> None:
    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            while data := await r.read(65536):
                w.write(data)
                await w.drain()
        except ConnectionError:
            pass
        w.close()

    await serve(handle, port_holder, stop)


async def cps(port: int, seconds: float, concurrency: int = 32) -> float:
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
            w.write(b"x")
            await asyncio.wait_for(r.readexactly(1), 10)
            w.close()
            done += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done / (time.perf_counter() - t0)


async def hold_streams(port: int, n: int) -> list[asyncio.StreamWriter]:
    writers = []
    for _ in range(n):
        r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
        w.write(b"y")
        await asyncio.wait_for(r.readexactly(1), 10)
        writers.append(w)
    return writers


# --- the run ---------------------------------------------------------------------------------

@contextmanager
def topology(tmp: Path, workers: int, iperf_port: int, http_port: int, echo_port: int
             ) -> Iterator[tuple[Proc, Proc, dict[str, int]]]:
    server_cfg = tmp / "server.yaml"
    server_cfg.write_text(f"""
services:
- name: server
  addr: 127.0.0.1:0
  handler:
    type: relay
    metadata:
      entryPoint: "127.0.0.1:0"
      ingress: ingress-0
  listener:
    type: tcp
ingresses:
- name: ingress-0
  rules:
  - hostname: "iperf.local"
    endpoint: {TID}
  - hostname: "echo.local"
    endpoint: {TID}
  - hostname: "web.local"
    endpoint: {TID}
""")
    server = burrow(["-C", str(server_cfg), "--workers", str(workers)], tmp / f"server{workers}.log")
    ready = server.ready()
    relay = ready["server/relay"].rsplit(":", 1)[1]
    entry = int(ready["server/entrypoint"].rsplit(":", 1)[1])
    client_cfg = tmp / "client.yaml"
    node = f"""
chains:
- name: chain-0
  hops:
  - name: hop-0
    nodes:
    - name: node-0
      addr: 127.0.0.1:{relay}
      connector:
        type: relay
        metadata:
          tunnelID: {TID}
      dialer:
        type: tcp
"""
    client_cfg.write_text(f"""
services:
- name: iperf-tcp
  addr: :0
  handler: {{type: rtcp}}
  listener: {{type: rtcp, chain: chain-0}}
  forwarder:
    nodes:
    - {{name: iperf, addr: "127.0.0.1:{iperf_port}", host: iperf.local}}
    - {{name: echo, addr: "127.0.0.1:{echo_port}", host: echo.local}}
    - {{name: web, addr: "127.0.0.1:{http_port}"}}
- name: iperf-udp
  addr: :0
  handler: {{type: rudp}}
  listener: {{type: rudp, chain: chain-0}}
  forwarder:
    nodes:
    - {{name: iperf, addr: "127.0.0.1:{iperf_port}", host: iperf.local}}
""" + node)
    client = burrow(["-C", str(client_cfg), "--workers", "1"], tmp / f"client{workers}.log")
    client.ready()
    wait_log(tmp / f"server{workers}.log", "tunnel.up", 2)
    visitor_cfg = tmp / "visitor.yaml"
    vport = free_port()  # iperf3 -u needs its TCP control port and UDP port to be the same
    visitor_cfg.write_text(f"""
services:
- name: iperf-tcp
  addr: 127.0.0.1:{vport}
  handler: {{type: tcp, chain: chain-0}}
  listener: {{type: tcp}}
  forwarder: {{nodes: [{{name: iperf, addr: "iperf.local:0"}}]}}
- name: iperf-udp
  addr: 127.0.0.1:{vport}
  handler: {{type: udp, chain: chain-0}}
  listener: {{type: udp, metadata: {{keepalive: true}}}}
  forwarder: {{nodes: [{{name: iperf, addr: "iperf.local:0"}}]}}
- name: echo
  addr: 127.0.0.1:0
  handler: {{type: tcp, chain: chain-0}}
  listener: {{type: tcp}}
  forwarder: {{nodes: [{{name: echo, addr: "echo.local:0"}}]}}
""" + node)
    visitor = burrow(["-C", str(visitor_cfg), "--workers", str(workers)], tmp / f"visitor{workers}.log")
    vready = visitor.ready()
    ports = {
        "entry": entry,
        "visitor_tcp": int(vready["iperf-tcp/visitor"].rsplit(":", 1)[1]),
        "visitor_udp": int(vready["iperf-udp/visitor"].split("/")[0].rsplit(":", 1)[1]),
        "visitor_echo": int(vready["echo/visitor"].rsplit(":", 1)[1]),
    }
    try:
        yield server, client, ports
    finally:
        visitor.stop()
        client.stop()
        server.stop()


def row(name: str, direct: float, burrow_v: float, unit: str) -> str:
    ratio = burrow_v / direct if direct else float("nan")
    return f"| {name} | {direct:,.2f} {unit} | {burrow_v:,.2f} {unit} | {ratio:.2f}x |"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="2 s runs, fewer requests")
    args = ap.parse_args()
    secs = 2 if args.quick else args.seconds
    tmp = Path(tempfile.mkdtemp(prefix="burrow-bench-"))
    iperf_port = free_port()
    iperf_srv = subprocess.Popen(["iperf3", "-s", "-p", str(iperf_port)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    http_holder: list[int] = []
    echo_holder: list[int] = []
    loop.create_task(http_backend(http_holder, stop))
    loop.create_task(echo_backend(echo_holder, stop))
    while not (http_holder and echo_holder):
        loop.run_until_complete(asyncio.sleep(0.01))
    http_port, echo_port = http_holder[0], echo_holder[0]
    time.sleep(0.3)
    lines = [f"machine: {os.cpu_count()} cores, {sys.version.split()[0]}, {time.strftime('%Y-%m-%d')}",
             "", "| figure | direct | through Burrow | ratio |", "|---|---|---|---|"]
    try:
        d1 = iperf(iperf_port, seconds=secs)
        d4 = iperf(iperf_port, "-P", "4", seconds=secs)
        du = iperf(iperf_port, "-u", "-b", "0", "-l", "1400", seconds=secs)
        nreq = 200 if args.quick else 1000
        d_rps = loop.run_until_complete(rps(http_port, secs))
        d_lat = loop.run_until_complete(latencies(http_port, nreq))
        d_cps = loop.run_until_complete(cps(echo_port, secs))
        for w in args.workers:
            with topology(tmp, w, iperf_port, http_port, echo_port) as (server, client, ports):
                idle_s, idle_c = server.rss_mb(), client.rss_mb()
                b1 = iperf(ports["visitor_tcp"], seconds=secs)
                b4 = iperf(ports["visitor_tcp"], "-P", "4", seconds=secs)
                try:
                    bu = iperf(ports["visitor_udp"], "-u", "-b", "0", "-l", "1400", seconds=secs)
                except (RuntimeError, KeyError, json.JSONDecodeError) as exc:
                    bu = float("nan")
                    print(f"udp run failed: {exc}", file=sys.stderr)
                b_rps = loop.run_until_complete(rps(ports["entry"], secs))
                b_lat = loop.run_until_complete(latencies(ports["entry"], nreq))
                b_cps = loop.run_until_complete(cps(ports["visitor_echo"], secs))
                held = loop.run_until_complete(hold_streams(ports["visitor_echo"], 1000))
                held_s, held_c = server.rss_mb(), client.rss_mb()
                for wr in held:
                    wr.close()
                lines.append(f"| **workers={w}** | | | |")
                lines.append(row("iperf3 TCP 1 stream, full path", d1, b1, "Gbit/s"))
                lines.append(row("iperf3 TCP 4 streams, full path", d4, b4, "Gbit/s"))
                lines.append(row("iperf3 UDP (-b 0, 1400 B), full path", du, bu, "Gbit/s"))
                lines.append(row("HTTP req/s, new conn each, entry point", d_rps, b_rps, "req/s"))
                lines.append(row("TCP connections/s, visitor path", d_cps, b_cps, "conn/s"))
                for q in (50, 90, 99):
                    dq = statistics.quantiles(d_lat, n=100)[q - 1] * 1e6
                    bq = statistics.quantiles(b_lat, n=100)[q - 1] * 1e6
                    lines.append(f"| HTTP latency p{q}, entry point | {dq:,.0f} us | {bq:,.0f} us "
                                 f"| +{bq - dq:,.0f} us |")
                lines.append(f"| RSS server / client idle | | {idle_s:.1f} / {idle_c:.1f} MB | |")
                lines.append(f"| RSS server / client, 1000 open streams | | {held_s:.1f} / "
                             f"{held_c:.1f} MB | |")
    finally:
        stop.set()
        loop.run_until_complete(asyncio.sleep(0.05))
        iperf_srv.terminate()
        iperf_srv.wait(5)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
