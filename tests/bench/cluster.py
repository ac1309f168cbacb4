"""Cluster benchmark: what a forward costs, and connection rate through three nodes vs one.

    python3 tests/bench/cluster.py [--repeat 3] [--workers 1]   # the nodes run this checkout

Three Burrow nodes (127.0.0.2, .3, .4; ``--workers`` each) share a redis-server; one tunnel
client on node a publishes the HTTP backend and iperf3. In the same run, against a direct
baseline (the backend itself):
- latency of a new-connection GET (sequential, n = ``--requests``): direct, at node a's entry
  point (local connector), at node b's (forwarded to a over the cluster's mutual TLS);
- keep-alive request rate (wrk, 32 connections): direct, local, forwarded;
- bulk TCP throughput (iperf3) through a TCP visitor dialing a (local) and b (forwarded);
- new-connection request rate, 64 concurrent clients: all at node a vs spread over a, b, c
  (b and c forward to a).
Every figure is given as min-max over ``--repeat`` runs; the machine is shared, so compare
figures of one run (the ratios), not across runs. Results go in BENCHMARKS.md (Cluster).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import uvloop
from load import REQ_CLOSE, REQUEST_TIMEOUT, HttpConn, iperf, wrk
from procs import Proc, Procs, free_port, missing_tools, raise_nofile, wait_listening
from topology import BACKENDS, ready_port

REPO = Path(__file__).resolve().parents[2]
# The nodes run this checkout unless PYTHONPATH names another one (whatever is installed).
if not os.environ.get("PYTHONPATH"):
    os.environ["PYTHONPATH"] = os.pathsep.join(
        str(REPO / d) for d in ("shared", "worker", "supervisor")
    )
TID = "22f43305-42f7-4232-bbbc-aa6c042e3bc3"
SECRET = "bench-cluster-secret-0123456789abcdef"
NODES = {"a": "127.0.0.2", "b": "127.0.0.3", "c": "127.0.0.4"}
UP_TIMEOUT = 30.0

NODE_YAML = """
services:
- name: server
  addr: {host}:0
  handler:
    type: relay
    metadata: {{entryPoint: "{host}:0", ingress: ingress-0}}
  listener: {{type: tcp}}
ingresses:
- name: ingress-0
  rules:
  - {{hostname: "web.local", endpoint: {tid}}}
  - {{hostname: "iperf-raw.local", endpoint: {tid}}}
burrow:
  cluster: {{redis: "unix://{redis}", node: {name}, advertise: "{host}:0", secret: {secret},
            ttl: 5}}
"""

CHAIN = """
- name: chain-{name}
  hops:
  - name: hop-0
    nodes:
    - name: node-0
      addr: {relay}
      connector: {{type: relay, metadata: {{tunnelID: {tid}}}}}
      dialer: {{type: tcp}}
"""

CLIENT_YAML = """
services:
- name: rtcp
  addr: :0
  handler: {{type: rtcp}}
  listener: {{type: rtcp, chain: chain-a}}
  forwarder:
    nodes:
    - {{name: web, addr: "127.0.0.1:{http}", host: web.local}}
    - {{name: iperf, addr: "127.0.0.1:{iperf}", host: iperf-raw.local}}
chains:
"""

VISITOR_SERVICE = """
- name: iperf-{name}
  addr: 127.0.0.1:0
  handler: {{type: tcp, chain: chain-{name}}}
  listener: {{type: tcp}}
  forwarder: {{nodes: [{{name: iperf, addr: "iperf-raw.local:0"}}]}}
"""


async def fresh_get(host: str, port: int) -> None:
    """One GET on a new connection to ``host:port``."""
    loop = asyncio.get_running_loop()
    _, conn = await loop.create_connection(HttpConn, host, port)
    try:
        await conn.request(REQ_CLOSE)
    finally:
        conn.close()


async def latencies(host: str, port: int, n: int) -> list[float]:
    """``n`` sequential new-connection GETs: seconds each."""
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        async with asyncio.timeout(REQUEST_TIMEOUT):
            await fresh_get(host, port)
        out.append(time.perf_counter() - t0)
    return out


async def conn_rate(targets: list[tuple[str, int]], seconds: float, concurrency: int) -> float:
    """New-connection GETs/s by ``concurrency`` clients cycling over ``targets``."""
    done = 0
    deadline = time.perf_counter() + seconds
    cycle = itertools.cycle(targets)

    async def client() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            host, port = next(cycle)
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    await fresh_get(host, port)
                done += 1
            except (OSError, ValueError, TimeoutError):
                pass

    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return done / (time.perf_counter() - t0)


def wrk_at(host: str, port: int, seconds: int) -> float:
    """Keep-alive requests/s of wrk (1 thread, 32 connections) at ``host:port``."""
    if host == "127.0.0.1":
        return wrk(port, seconds)[0]
    out = subprocess.run(
        ["wrk", "-t1", "-c32", f"-d{seconds}s", "-H", "Host: web.local", f"http://{host}:{port}/"],
        capture_output=True, text=True, timeout=seconds + 30, check=False,
    )  # fmt: skip
    for line in out.stdout.splitlines():
        if line.startswith("Requests/sec:"):
            return float(line.split()[1])
    raise RuntimeError(f"wrk: {out.stdout[-300:]} {out.stderr[-300:]}")


@dataclass
class Run:
    """One repetition's figures."""

    lat: dict[str, list[float]] = field(default_factory=dict)
    rps: dict[str, float] = field(default_factory=dict)
    gbps: dict[str, float] = field(default_factory=dict)
    rate: dict[str, float] = field(default_factory=dict)


def start_cluster(procs: Procs, tmp: Path, workers: int) -> dict[str, object]:
    """redis, backends, iperf3, three nodes, the tunnel client on a, the visitors; ports."""
    rdir = Path(tempfile.mkdtemp(prefix="bench-redis-", dir="/tmp"))
    sock = rdir / "redis.sock"
    procs.start(["redis-server", "--port", "0", "--unixsocket", str(sock), "--save", "",
                 "--appendonly", "no", "--dir", str(rdir)], tmp / "redis.log")  # fmt: skip
    deadline = time.monotonic() + UP_TIMEOUT
    while not sock.exists() and time.monotonic() < deadline:
        time.sleep(0.05)  # a bench script, not a test: redis has no READY line to wait on
    back = procs.start([sys.executable, str(BACKENDS)], tmp / "backends.log", stdin_pipe=True)
    ports = back.ready("PORTS", timeout=20)
    iperf_port = free_port()
    procs.start(["iperf3", "-s", "-B", "127.0.0.1", "-p", str(iperf_port)], tmp / "iperf3.log")
    wait_listening(iperf_port)
    relay, entry, nodes = {}, {}, {}
    for name, host in NODES.items():
        cfg = tmp / f"node-{name}.yaml"
        cfg.write_text(NODE_YAML.format(host=host, tid=TID, redis=sock, name=name, secret=SECRET))
        proc = procs.burrow(["-C", str(cfg), "--workers", str(workers)], tmp / f"node-{name}.log")
        nodes[name] = proc
        fields = proc.ready(timeout=UP_TIMEOUT)
        relay[name] = fields["server/relay"]
        entry[name] = ready_port(fields["server/entrypoint"])
    client = tmp / "client.yaml"
    client.write_text(
        CLIENT_YAML.format(http=ports["http"], iperf=iperf_port)
        + CHAIN.format(name="a", relay=relay["a"], tid=TID)
    )
    procs.burrow(["-C", str(client)], tmp / "client.log").ready(timeout=UP_TIMEOUT)
    visitors = tmp / "visitors.yaml"
    visitors.write_text(
        "services:"
        + "".join(VISITOR_SERVICE.format(name=n) for n in ("a", "b"))
        + "chains:"
        + "".join(CHAIN.format(name=n, relay=relay[n], tid=TID) for n in ("a", "b"))
    )
    vfields = procs.burrow(["-C", str(visitors)], tmp / "visitors.log").ready(timeout=UP_TIMEOUT)
    return {
        "http": int(ports["http"]),
        "iperf": iperf_port,
        "entry": entry,
        "visitor": {n: ready_port(vfields[f"iperf-{n}/visitor"]) for n in ("a", "b")},
        "redis_dir": rdir,
        "nodes": nodes,
    }


async def wait_forwarding(entry: dict[str, int]) -> None:
    """Until a GET at every node's entry point is answered (b and c: their view has a's tunnel)."""
    deadline = time.monotonic() + UP_TIMEOUT
    for name, port in entry.items():
        while True:
            try:
                async with asyncio.timeout(2.0):
                    await fresh_get(NODES[name], port)
                break
            except (OSError, ValueError, TimeoutError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)


def one_run(ports: dict[str, object], args: argparse.Namespace) -> Run:
    entry: dict[str, int] = ports["entry"]  # type: ignore[assignment]
    visitor: dict[str, int] = ports["visitor"]  # type: ignore[assignment]
    http = int(ports["http"])  # type: ignore[call-overload]
    run = Run()
    where = {"direct": ("127.0.0.1", http), "local (a)": (NODES["a"], entry["a"]),
             "forwarded (b->a)": (NODES["b"], entry["b"])}  # fmt: skip
    for label, (host, port) in where.items():
        run.lat[label] = uvloop.run(latencies(host, port, args.requests))
        run.rps[label] = wrk_at(host, port, args.seconds)
    run.gbps["direct"] = iperf(int(ports["iperf"]), seconds=args.seconds)  # type: ignore[call-overload]
    run.gbps["local (a)"] = iperf(visitor["a"], seconds=args.seconds)
    run.gbps["forwarded (b->a)"] = iperf(visitor["b"], seconds=args.seconds)
    one = [(NODES["a"], entry["a"])]
    three = [(NODES[n], entry[n]) for n in NODES]
    run.rate["one node (a)"] = uvloop.run(conn_rate(one, args.seconds, 64))
    spies = _profile(ports["nodes"], args.profile)  # type: ignore[arg-type]
    run.rate["three nodes (a, b, c)"] = uvloop.run(conn_rate(three, args.seconds, 64))
    for spy in spies:
        spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
    for spy in spies:
        spy.wait(30)
    return run


def _profile(nodes: dict[str, Proc], out: Path | None) -> list[subprocess.Popen[bytes]]:
    """py-spy on every process of nodes a and b for the three-node phase (``--profile DIR``)."""
    if out is None:
        return []
    out.mkdir(parents=True, exist_ok=True)
    spies = []
    for name in ("a", "b"):
        for k, pid in enumerate(sorted(nodes[name].pids())):
            role = "supervisor" if k == 0 else f"worker{k}"
            cmd = ["py-spy", "record", "-p", str(pid), "-r", "200", "-f", "raw", "-o",
                   str(out / f"{name}-{role}.txt")]  # fmt: skip
            spies.append(
                subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
    time.sleep(1.0)  # py-spy attaches (settling, not synchronisation)
    return spies


def span(values: list[float], fmt: str) -> str:
    lo, hi = min(values), max(values)
    return fmt.format(lo) if lo == hi else f"{fmt.format(lo)}-{fmt.format(hi)}"


def report(runs: list[Run], args: argparse.Namespace) -> None:
    print(f"\n## Cluster ({args.workers} worker(s) per node, {len(runs)} runs, shared machine)\n")
    print("| path | p50 latency (ms) | p99 (ms) | added p50 vs direct (ms) | keep-alive req/s | "
          "iperf3 Gbit/s |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for label in runs[0].lat:
        p50 = [statistics.median(r.lat[label]) * 1e3 for r in runs]
        p99 = [sorted(r.lat[label])[int(len(r.lat[label]) * 0.99) - 1] * 1e3 for r in runs]
        added = [
            (statistics.median(r.lat[label]) - statistics.median(r.lat["direct"])) * 1e3
            for r in runs
        ]
        print(f"| {label} | {span(p50, '{:.2f}')} | {span(p99, '{:.2f}')} | "
              f"{span(added, '{:+.2f}')} | {span([r.rps[label] for r in runs], '{:.0f}')} | "
              f"{span([r.gbps[label] for r in runs], '{:.2f}')} |")  # fmt: skip
    fwd = [r.rps["forwarded (b->a)"] / r.rps["local (a)"] for r in runs]
    thr = [r.gbps["forwarded (b->a)"] / r.gbps["local (a)"] for r in runs]
    print(f"\nforwarded / local: keep-alive req/s {span(fwd, '{:.2f}')}x, "
          f"throughput {span(thr, '{:.2f}')}x")  # fmt: skip
    print("\n| new-connection GETs, 64 clients | req/s | vs one node |")
    print("|---|---|---|")
    for label in runs[0].rate:
        ratio = [r.rate[label] / r.rate["one node (a)"] for r in runs]
        print(f"| {label} | {span([r.rate[label] for r in runs], '{:.0f}')} | "
              f"{span(ratio, '{:.2f}')}x |")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=1, help="workers per node (default 1)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--requests", type=int, default=300, help="latency samples per path")
    parser.add_argument("--seconds", type=int, default=5, help="length of each rate run")
    parser.add_argument("--profile", type=Path, help="py-spy the three-node phase into DIR")
    args = parser.parse_args()
    missing = missing_tools(("redis-server", "iperf3", "wrk"))
    if missing:
        print(f"missing tools: {', '.join(missing)}", file=sys.stderr)
        return 2
    raise_nofile()
    procs = Procs()
    tmp = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    try:
        ports = start_cluster(procs, tmp, args.workers)
        uvloop.run(wait_forwarding(ports["entry"]))  # type: ignore[arg-type]
        runs = []
        for i in range(args.repeat):
            print(f"run {i + 1}/{args.repeat} ...", file=sys.stderr, flush=True)
            runs.append(one_run(ports, args))
        report(runs, args)
    except BaseException:
        print(f"logs kept in {tmp}", file=sys.stderr)
        raise
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    finally:
        procs.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
