"""What the admin endpoint costs: `python3 tests/bench/metrics_cost.py [--rounds 3] [--seconds 5]`.

The same topology as run_bench.py (server with --workers N, 1-worker tunnel client, visitor),
started alternately without and with ``-metrics 127.0.0.1:0`` on the server, while a scraper
thread reads /metrics and /api/tunnels once per second (a Prometheus at a 1 s interval, far more
often than the usual 15 s). Per round and mode: iperf3 TCP over the full path, HTTP requests/s
with a new connection each through the entry point, TCP connections/s over the visitor.
Medians over the rounds, printed as a markdown table for BENCHMARKS.md. Never run by CI.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).parent))

import load
from procs import TOOLS_HINT, Procs, missing_tools, raise_nofile
from topology import Backends, burrow, start_backends

SCRAPE_EVERY = 1.0


def scraper(log: Path, stop: threading.Event, count: list[int]) -> None:
    """GET /metrics and /api/tunnels every SCRAPE_EVERY seconds until ``stop``."""
    address = ""
    while not stop.is_set() and not address:
        found = re.search(r"admin\.listening address=(\S+)", log.read_text(errors="replace"))
        address = found.group(1) if found else ""
        stop.wait(0.1)
    host, _, port = address.rpartition(":")
    while not stop.wait(SCRAPE_EVERY):
        for path in ("/metrics", "/api/tunnels"):
            conn = http.client.HTTPConnection(host, int(port), timeout=5)
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            conn.close()
            assert resp.status == 200, (path, resp.status)
        count[0] += 1


def one_round(
    loop: asyncio.AbstractEventLoop,
    procs: Procs,
    tmp: Path,
    back: Backends,
    workers: int,
    metrics: bool,
    secs: int,
) -> dict[str, float]:
    """The three figures for one start of the trio."""
    extra = ("-metrics", "127.0.0.1:0") if metrics else ()
    out: dict[str, float] = {}
    with burrow(procs, tmp, workers, back, server_extra=extra) as bw:
        stop = threading.Event()
        scrapes = [0]
        thread = None
        if metrics:
            slog = tmp / f"server{workers}.log"
            thread = threading.Thread(target=scraper, args=(slog, stop, scrapes), daemon=True)
            thread.start()
        time.sleep(0.5)  # settle after start (not a synchronisation: READY already seen)
        try:
            out["tcp1"] = load.iperf(bw.visitor_tcp, seconds=secs)
            out["rps"] = loop.run_until_complete(load.closed_rps(bw.entry, secs))[0]
            out["cps"] = loop.run_until_complete(load.conn_rate(bw.visitor_echo, secs))
        finally:
            stop.set()
            if thread is not None:
                thread.join(timeout=10)
        if metrics:
            assert scrapes[0] > 0, "the scraper never got an answer"
            out["scrapes"] = scrapes[0]
    return out


def main() -> int:
    """Alternate off/on rounds and print the medians side by side."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    args = ap.parse_args()
    if missing := missing_tools():
        print(f"missing tools: {', '.join(missing)}; install with: {TOOLS_HINT}", file=sys.stderr)
        return 2
    raise_nofile()
    tmp = Path(tempfile.mkdtemp(prefix="burrow-metrics-"))
    procs = Procs()
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    results: dict[bool, list[dict[str, float]]] = {False: [], True: []}
    try:
        back = start_backends(procs, tmp)
        for r in range(args.rounds):
            for metrics in (False, True):
                print(f"round {r + 1}, metrics {'on' if metrics else 'off'}", file=sys.stderr)
                results[metrics].append(
                    one_round(loop, procs, tmp, back, args.workers, metrics, args.seconds)
                )
    finally:
        procs.stop_all()
    rows = [
        ("tcp1", "iperf3 TCP 1 stream, full path (Gbit/s)", "{:.2f}"),
        ("rps", "HTTP req/s, new connection each, entry point", "{:,.0f}"),
        ("cps", "TCP connections/s over the visitor", "{:,.0f}"),
    ]
    print(
        f"| workers={args.workers}, median of {args.rounds} | metrics off | metrics on | on/off |"
    )
    print("|---|---|---|---|")
    for key, label, fmt in rows:
        off = statistics.median(x[key] for x in results[False])
        on = statistics.median(x[key] for x in results[True])
        print(f"| {label} | {fmt.format(off)} | {fmt.format(on)} | {on / off:.3f} |")
    for metrics in (False, True):
        vals = "; ".join(", ".join(f"{k}={v:.2f}" for k, v in x.items()) for x in results[metrics])
        print(f"metrics {'on' if metrics else 'off'} rounds: {vals}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
