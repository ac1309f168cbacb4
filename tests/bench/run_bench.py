"""Burrow benchmarks, on demand: `python3 tests/bench/run_bench.py [--workers 1 2] [--quick]`.

Every figure is measured twice in the same run, direct on loopback (load generator process ->
backend process) and through Burrow, and printed side by side with the ratio or the added
latency, as a markdown table for BENCHMARKS.md. Topology (all on 127.0.0.1): backends.py (HTTP
"ok" + TCP echo, own process), iperf3 -s, Burrow server (relay + entry point), tunnel client
(1 worker), visitor; see topology.py. Figures:
- iperf3 TCP 1 / 4 streams and UDP over the full path (visitor -> server -> client -> iperf3);
- iperf3 TCP (1 and 4 streams) through the public entry point, wrapped in TLS by socat (routed
  by SNI); the direct baseline runs through the same two socats, so TLS costs the same on both
  sides. UDP cannot enter publicly (the entry point takes HTTP and TLS only, as gost's does);
- HTTP through the entry point: max req/s with a new connection each, wrk keep-alive max req/s,
  sequential new-connection latency, and open-loop fixed rates (1, 1000, 2000, 4000 req/s) with
  a new connection per request and with a keep-alive pool;
- 1-byte ping-pong latency on an established connection over the full path (echo);
- TCP connections/s over the visitor;
- RSS and PSS of the server (supervisor + workers) and of the client: idle, under load (2000
  req/s keep-alive) and with 1,000 visitor connections held open.
Never run by CI (pytest ignores tests/bench).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import platform
import shlex
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import uvloop

sys.path.insert(0, str(Path(__file__).parent))

import load
from load import RateResult
from procs import TOOLS_HINT, Procs, missing_tools, raise_nofile
from topology import Backends, burrow, start_backends

RATES = (1, 1000, 2000, 4000)
BUSY_POLL = ("--busy-poll-us", "200")  # the opt-in latency setting, measured on its own rows
LOAD_RATE = 2000  # memory "under load" is sampled during this keep-alive run
POOL = 32
HELD = 1000
UDP_RATE = "500M"  # offered UDP rate of the loss figure
# The loss figure again with iperf3 -w: both iperf3 sockets get this buffer (net.core.rmem_max
# allows 4 MiB here), which tells loss in the receiving iperf3 from loss in Burrow.
UDP_WINDOW = "4M"


@dataclass
class Target:
    """Where one side of the comparison sends its load."""

    iperf: int
    tls: int
    http: int
    echo: int


@dataclass
class Side:
    """Every figure measured on one side (direct or through Burrow)."""

    gbit: dict[str, float] = field(default_factory=dict)
    rps: tuple[float, int] = (math.nan, 0)
    wrk: tuple[float, int] | None = None
    seq: list[float] = field(default_factory=list)
    rates: dict[tuple[int, bool], RateResult] = field(default_factory=dict)
    ping: list[float] = field(default_factory=list)
    cps: float = math.nan
    mem: dict[str, tuple[float, float, float, float]] = field(default_factory=dict)
    loss: tuple[int, int] | None = None  # (lost, total) datagrams at UDP_RATE offered
    loss_w: tuple[int, int] | None = None  # the same with iperf3 -w UDP_WINDOW


def pct(data: list[float], q: float) -> float:
    """Nearest-rank percentile ``q`` of ``data`` (NaN when empty)."""
    if not data:
        return math.nan
    s = sorted(data)
    return s[max(0, min(len(s) - 1, math.ceil(q / 100 * len(s)) - 1))]


START = time.monotonic()


def log(msg: str) -> None:
    """Progress on stderr with the time since the start."""
    print(f"[{time.monotonic() - START:6.1f}s] {msg}", file=sys.stderr, flush=True)


def attempt(name: str, fn: Callable[[], Any], default: Any = math.nan) -> Any:
    """Run one measurement; a failure is reported and leaves ``default`` in the table."""
    try:
        return fn()
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # noqa: BLE001 - one failed figure must not lose the others
        log(f"{name} FAILED: {type(exc).__name__}: {exc}")
        return default


def _sample_into(into: dict[str, Any], key: str, fn: Callable[[], Any]) -> None:
    into[key] = fn()


def measure(
    loop: asyncio.AbstractEventLoop,
    t: Target,
    args: argparse.Namespace,
    udp: int,
    mem: Callable[[], tuple[float, float, float, float]] | None = None,
) -> Side:
    """Every figure against ``t``; ``mem`` samples server/client memory during the load run."""
    s, secs, run = Side(), args.secs, loop.run_until_complete
    udp_b0 = ("-u", "-b", "0", "-l", "1400")
    if args.only != "udp":
        log(f"  iperf3 (5 x {secs} s)")
        s.gbit["tcp1"] = attempt("iperf3 tcp1", lambda: load.iperf(t.iperf, seconds=secs))
        s.gbit["tcp4"] = attempt(
            "iperf3 tcp4", lambda: load.iperf(t.iperf, "-P", "4", seconds=secs)
        )
    s.gbit["udp"] = attempt("iperf3 udp", lambda: load.iperf(udp, *udp_b0, seconds=secs))
    if args.only == "udp":
        log(f"  iperf3 UDP at {UDP_RATE} ({secs} s)")
        got = attempt("iperf3 udp loss", lambda: load.iperf_udp(udp, UDP_RATE, secs), None)
        if got is not None:
            s.gbit["udp_rate"], lost, total = got
            s.loss = (lost, total)
        log(f"  iperf3 UDP at {UDP_RATE}, -w {UDP_WINDOW} ({secs} s)")
        got = attempt(
            "iperf3 udp loss -w", lambda: load.iperf_udp(udp, UDP_RATE, secs, UDP_WINDOW), None
        )
        if got is not None:
            s.gbit["udp_rate_w"], lost, total = got
            s.loss_w = (lost, total)
        return s
    s.gbit["tls"] = attempt("iperf3 tls", lambda: load.iperf(t.tls, seconds=secs))
    s.gbit["tls4"] = attempt("iperf3 tls4", lambda: load.iperf(t.tls, "-P", "4", seconds=secs))
    log("  HTTP max req/s, new connection each")
    attempt("warm-up", lambda: run(load.closed_rps(t.http, 0.3)))
    s.rps = attempt("http rps", lambda: run(load.closed_rps(t.http, secs)), (math.nan, 0))
    if args.wrk:
        s.wrk = attempt("wrk", lambda: load.wrk(t.http, secs), (math.nan, 0))
    s.seq = attempt(
        "sequential latency", lambda: run(load.sequential_latency(t.http, args.seq)), []
    )
    for rate in RATES:
        count = args.slow_count if rate < 10 else int(rate * secs)
        for keep in (False, True):
            log(f"  HTTP {rate} req/s open-loop, {'keep-alive' if keep else 'new conn'}")
            sample = None
            if mem is not None and keep and rate == LOAD_RATE:
                sample = partial(_sample_into, s.mem, "load", mem)
            job = load.open_loop(t.http, rate, count, keep, POOL, sample)
            s.rates[rate, keep] = attempt(f"rate {rate}", partial(run, job), RateResult(rate))
    log(f"  ping-pong x{args.pings}, connections/s")
    s.ping = attempt("ping-pong", lambda: run(load.ping_pong(t.echo, args.pings)), [])
    s.cps = attempt("conn/s", lambda: run(load.conn_rate(t.echo, secs)))
    return s


def latency_side(
    loop: asyncio.AbstractEventLoop, echo: int, http: int, args: argparse.Namespace
) -> Side:
    """Only the latency figures: ping-pong and 1,000 req/s keep-alive."""
    s, run = Side(), loop.run_until_complete
    log(f"  ping-pong x{args.pings}, HTTP 1000 req/s open-loop keep-alive")
    s.ping = attempt("ping-pong", lambda: run(load.ping_pong(echo, args.pings)), [])
    job = load.open_loop(http, 1000, 1000 * args.secs, True, POOL, None)
    s.rates[1000, True] = attempt("rate 1000", partial(run, job), RateResult(1000))
    return s


def latency_rows(d: Side, b: Side) -> list[str]:
    """Rows for a latency-only side (busy polling on)."""
    rows = [f"| **workers=1, {' '.join(BUSY_POLL)}** (latency only) | | | |"]
    for q in (50, 90, 99):
        rows.append(
            f"| latency p{q}, established conn, 1-byte ping-pong, full path | "
            f"{us(pct(d.ping, q))} | {us(pct(b.ping, q))} | {added(d.ping, b.ping, q)} |"
        )
    dr, br = d.rates.get((1000, True)), b.rates.get((1000, True))
    if dr is not None and br is not None:
        rows.append(
            f"| HTTP 1,000 req/s open-loop, keep-alive ({POOL} conns), entry point | "
            f"{rate_cell(dr)} | {rate_cell(br)} | {ratio(dr.achieved, br.achieved)}, "
            f"{added(dr.latencies, br.latencies, 50)} p50 |"
        )
    return rows


def us(x: float) -> str:
    """Seconds as whole microseconds."""
    return "n/a" if math.isnan(x) else f"{x * 1e6:,.0f} us"


def ratio(d: float, b: float) -> str:
    """``b / d`` as ``0.37x``."""
    return "n/a" if math.isnan(d) or math.isnan(b) or not d else f"{b / d:.2f}x"


def added(d: list[float], b: list[float], q: float) -> str:
    """``+N us`` difference of percentile ``q``."""
    dq, bq = pct(d, q), pct(b, q)
    return "n/a" if math.isnan(dq) or math.isnan(bq) else f"{(bq - dq) * 1e6:+,.0f} us"


def rate_cell(r: RateResult) -> str:
    """Achieved rate, errors and p50/p90/p99 of one open-loop run."""
    lat = "/".join(f"{pct(r.latencies, q) * 1e6:,.0f}" for q in (50, 90, 99))
    return f"{r.achieved:,.0f} req/s, {r.errors} err, p50/90/99 {lat} us"


def loss_cell(s: Side, window: bool = False) -> str:
    """``lost / total (pct)`` of the UDP loss run, with its received rate."""
    loss = s.loss_w if window else s.loss
    if loss is None:
        return "n/a"
    lost, total = loss
    share = 100 * lost / total if total else math.nan
    rate = s.gbit.get("udp_rate_w" if window else "udp_rate", math.nan)
    return f"{lost:,} / {total:,} ({share:.2f} %), {rate:.2f} Gbit/s"


def table(d: Side, b: Side, workers: int, only_udp: bool = False) -> list[str]:
    """Markdown rows comparing ``d`` (direct) with ``b`` (through Burrow)."""
    rows = [f"| **workers={workers}** | | | |"]

    def add(name: str, dv: str, bv: str, rel: str) -> None:
        rows.append(f"| {name} | {dv} | {bv} | {rel} |")

    for key, name in (
        ("tcp1", "iperf3 TCP 1 stream, full path"),
        ("tcp4", "iperf3 TCP 4 streams, full path"),
        ("udp", "iperf3 UDP (-b 0, 1400 B), full path"),
        ("tls", "iperf3 TCP 1 stream in TLS (socat, SNI), entry point"),
        ("tls4", "iperf3 TCP 4 streams in TLS (socat, SNI), entry point"),
    ):
        if only_udp and key != "udp":
            continue
        dv, bv = d.gbit.get(key, math.nan), b.gbit.get(key, math.nan)
        add(name, f"{dv:.2f} Gbit/s", f"{bv:.2f} Gbit/s", ratio(dv, bv))
    if only_udp:
        add(
            f"iperf3 UDP (-b {UDP_RATE}, 1400 B), full path: lost / total datagrams",
            loss_cell(d),
            loss_cell(b),
            "",
        )
        add(
            f"the same with iperf3 -w {UDP_WINDOW} (both iperf3 socket buffers)",
            loss_cell(d, window=True),
            loss_cell(b, window=True),
            "",
        )
        return rows
    add(
        "HTTP max req/s, new conn each (32 concurrent), entry point",
        f"{d.rps[0]:,.0f} req/s",
        f"{b.rps[0]:,.0f} req/s ({b.rps[1]} err)",
        ratio(d.rps[0], b.rps[0]),
    )
    if d.wrk is not None and b.wrk is not None:
        add(
            "HTTP max req/s, keep-alive (wrk -t1 -c32), entry point",
            f"{d.wrk[0]:,.0f} req/s",
            f"{b.wrk[0]:,.0f} req/s ({b.wrk[1]} err)",
            ratio(d.wrk[0], b.wrk[0]),
        )
    add(
        "TCP connections/s (1 byte echoed), visitor path",
        f"{d.cps:,.0f} conn/s",
        f"{b.cps:,.0f} conn/s",
        ratio(d.cps, b.cps),
    )
    for q in (50, 90, 99):
        add(
            f"latency p{q}, established conn, 1-byte ping-pong, full path",
            us(pct(d.ping, q)),
            us(pct(b.ping, q)),
            added(d.ping, b.ping, q),
        )
    for q in (50, 90, 99):
        add(
            f"HTTP latency p{q}, new conn each, sequential, entry point",
            us(pct(d.seq, q)),
            us(pct(b.seq, q)),
            added(d.seq, b.seq, q),
        )
    for rate in RATES:
        for keep in (False, True):
            dr, br = d.rates.get((rate, keep)), b.rates.get((rate, keep))
            if dr is None or br is None:
                continue
            mode = f"keep-alive ({POOL} conns)" if keep else "new conn each"
            add(
                f"HTTP {rate:,} req/s open-loop, {mode}, entry point",
                rate_cell(dr),
                rate_cell(br),
                f"{ratio(dr.achieved, br.achieved)}, {added(dr.latencies, br.latencies, 50)} p50",
            )
    labels = {
        "idle": "idle",
        "held": f"{HELD:,} open visitor connections",
        "load": f"under load ({LOAD_RATE} req/s keep-alive)",
    }
    for key in ("idle", "load", "held"):
        if key in b.mem:
            sr, sp, cr, cp = b.mem[key]
            add(
                f"memory RSS / PSS, server (supervisor + workers), {labels[key]}",
                "",
                f"{sr:.1f} / {sp:.1f} MB",
                "",
            )
            add(
                f"memory RSS / PSS, tunnel client, {labels[key]}", "", f"{cr:.1f} / {cp:.1f} MB", ""
            )
    return rows


def lag_note(sides: list[Side]) -> str:
    """One line on the generator's own scheduling lag, which the open-loop latencies include."""
    lags = [x for s in sides for (rate, _), r in s.rates.items() if rate > 1 for x in r.lag]
    short = [
        f"{'direct' if i == 0 else f'side {i}'} {rate}/s {'keep-alive' if keep else 'new conn'}"
        f" {r.achieved:,.0f}"
        for i, s in enumerate(sides)
        for (rate, keep), r in s.rates.items()
        if r.achieved < 0.95 * rate
    ]
    missed = (
        ""
        if not short
        else "\nRuns below 95% of their target rate (generator or path "
        "saturated on this machine): " + "; ".join(short) + "."
    )
    return (
        f"Open-loop scheduler lag (actual start - scheduled start, timerfd wake-up; included in "
        f"the latencies above): p50 {us(pct(lags, 50))}, p99 {us(pct(lags, 99))}." + missed
    )


def machine() -> str:
    """Cores, CPU, Python, uvloop, kernel, date."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"Machine: {os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, "
        f"uvloop {uvloop.__version__}, Linux {platform.release()}, "
        f"{time.strftime('%Y-%m-%d %H:%M')}"
    )


def _interrupted(signum: int, frame: object) -> None:
    """SIGTERM ends the run like Ctrl-C, so the ``finally`` clean-up runs."""
    raise KeyboardInterrupt


def parse_args() -> argparse.Namespace:
    """Command line."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[1, 2],
        help="server and visitor worker counts to measure (client: always 1)",
    )
    ap.add_argument("--seconds", type=int, default=5, help="length of each timed figure")
    ap.add_argument("--quick", action="store_true", help="2 s figures, fewer samples")
    ap.add_argument(
        "--only",
        choices=["udp"],
        help="udp: only the UDP rows (-b 0 throughput, loss at 500 Mbit/s offered)",
    )
    ap.add_argument(
        "--burrow-args",
        default="",
        help='extra arguments for each Burrow process, e.g. "--busy-poll-us 0"',
    )
    args = ap.parse_args()
    args.secs = 2 if args.quick else args.seconds
    args.seq = 200 if args.quick else 1000
    args.pings = 2000 if args.quick else 5000
    args.slow_count = 3 if args.quick else 5
    return args


def main() -> int:
    """Run everything, print the table; the exit status says whether clean-up was complete."""
    args = parse_args()
    if missing := missing_tools():
        print(f"missing tools: {', '.join(missing)}; install with: {TOOLS_HINT}", file=sys.stderr)
        return 2
    args.wrk = not missing_tools(("wrk",))
    if not args.wrk:
        print(f"wrk not found, skipping the wrk figure (install: {TOOLS_HINT})", file=sys.stderr)
    raise_nofile()
    signal.signal(signal.SIGTERM, _interrupted)
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="burrow-bench-"))
    procs = Procs()
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    lines: list[str] = []
    try:
        log(f"backends, iperf3 and TLS socats (logs in {tmp})")
        back: Backends = start_backends(procs, tmp)
        log("direct baselines")
        direct = measure(
            loop, Target(back.iperf, back.tls_in, back.http, back.echo), args, udp=back.iperf
        )
        sides = [direct]
        for w in args.workers:
            log(f"Burrow, workers={w}")
            try:
                with burrow(procs, tmp, w, back, tuple(shlex.split(args.burrow_args))) as bw:

                    def mem() -> tuple[float, float, float, float]:
                        return (*bw.server.memory_mb(), *bw.client.memory_mb())

                    time.sleep(0.5)
                    idle = mem()
                    b = measure(
                        loop,
                        Target(bw.visitor_tcp, bw.tls_in, bw.entry, bw.visitor_echo),
                        args,
                        udp=bw.visitor_tcp,
                        mem=mem,
                    )
                    b.mem["idle"] = idle
                    if args.only:
                        sides.append(b)
                        lines.extend(table(direct, b, w, only_udp=True))
                        continue
                    log(f"  holding {HELD} visitor connections")
                    held = attempt(
                        "hold",
                        lambda: loop.run_until_complete(load.hold(bw.visitor_echo, HELD)),
                        [],
                    )
                    if held:
                        time.sleep(0.5)
                        b.mem["held"] = mem()
                    load.release(held)
                    loop.run_until_complete(asyncio.sleep(0.2))
            except RuntimeError as exc:
                log(f"Burrow workers={w} failed to start: {exc}")
                lines.append(f"| **workers={w}**: Burrow failed to start | | | |")
                continue
            sides.append(b)
            lines.extend(table(direct, b, w))
        if not args.burrow_args and not args.only:
            log("Burrow, workers=1, busy polling 200 us (latency rows only)")
            try:
                with burrow(procs, tmp, 1, back, BUSY_POLL) as bw:
                    lines.extend(
                        latency_rows(direct, latency_side(loop, bw.visitor_echo, bw.entry, args))
                    )
            except RuntimeError as exc:
                log(f"Burrow with busy polling failed to start: {exc}")
    finally:
        loop.close()
        procs.stop_all()
    stray = procs.leftovers(str(tmp))
    wall = time.monotonic() - started
    command = " ".join(["python3 tests/bench/run_bench.py", *sys.argv[1:]])
    print(f"Command: `{command}`")
    print(machine())
    print(
        f"Wall time: {wall:.0f} s. Each timed figure {args.secs} s; latency rows: "
        f"{args.pings} ping-pongs, {args.seq} sequential requests, open-loop runs of "
        f"{args.secs} s ({args.slow_count} requests at 1 req/s)."
    )
    print()
    print("| figure | direct | through Burrow | ratio or added |")
    print("|---|---|---|---|")
    print("\n".join(lines))
    if not args.only:  # the open-loop runs it reports are skipped with --only
        print()
        print(lag_note(sides))
    if stray:
        print("STRAY PROCESSES LEFT:\n" + "\n".join(stray), file=sys.stderr)
        return 1
    print("Clean-up: no stray iperf3/socat/burrow/backend process left (pgrep).", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
