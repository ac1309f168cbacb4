"""Scale benchmark: one Burrow server, thousands of idle tunnels, up to 100,000 open streams.

    python3 tests/bench/scale.py --quick          # 1,000 tunnels, 5,000 streams (~1 min)
    python3 tests/bench/scale.py                  # 1,000 / 5,000 / 10,000 tunnels, then
                                                  # 10,000 / 50,000 / 100,000 streams (~6 min)
    python3 tests/bench/scale.py --tunnels 10000 --streams 100000 --idle-seconds 20

Needs Python 3.11 with uvloop and pyzmq (as Burrow itself) and open files for every connection:
about (tunnels + streams) * 2 + 1,000 in this process tree. It raises RLIMIT_NOFILE itself (the
hard limit too when run as root; otherwise run it with ``ulimit -Hn`` high enough). For every N
it starts a fresh server (``--workers 2``, relay port + entry point, one ingress rule per tunnel
in a generated config), then the load tool (``scale_load.py``, its own process) and prints:

- registration: time until every BIND is answered, and BINDs/s;
- memory: server RSS and PSS (supervisor + workers, /proc/<pid>/smaps_rollup) above the idle
  server, per tunnel;
- idle CPU: server user+system CPU (/proc/<pid>/stat) over ``--idle-seconds`` with only smux
  keepalives flowing (a NOP each way every 10 s per tunnel), as % of one core;
- routing: p50 / p99 of a new request to a random tunnel, through the entry point by Host (connect,
  GET, response) and through relay CONNECT by tunnel ID (connect, CONNECT, 1 byte echoed);
- then, at the largest N, open streams held (half HTTP keep-alive via the entry point, half
  CONNECT), memory per stream above the tunnels-only figure, and failures.

The server runs this checkout (PYTHONPATH is set to its shared:worker:supervisor); to measure
another code version, set PYTHONPATH to that checkout's three directories (the server inherits
it; the load tool always uses this checkout's codecs).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from procs import Proc, Procs
from scale_load import HOLD_TIMEOUT, host, tunnel_id

HERE = Path(__file__).parent
REPO = HERE.resolve().parents[1]
# The server runs this checkout unless PYTHONPATH names another one (whatever is installed).
if not os.environ.get("PYTHONPATH"):
    os.environ["PYTHONPATH"] = os.pathsep.join(
        str(REPO / d) for d in ("shared", "worker", "supervisor")
    )
TICK = os.sysconf("SC_CLK_TCK")


def raise_files(want: int) -> int:
    """Raise RLIMIT_NOFILE (hard too if allowed) to ``want``; returns the soft limit reached."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return want
        except (ValueError, OSError):
            want = hard
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return max(soft, want)


def config(n: int, log_level: str) -> str:
    """Burrow TOML: relay server + entry point, one ingress rule per tunnel, limits off."""
    out = [
        '[[services]]\nname = "server"\naddr = "127.0.0.1:0"\n',
        '[services.handler]\ntype = "relay"\n',
        '[services.handler.metadata]\nentrypoint = "127.0.0.1:0"\ningress = "scale"\n',
        '[services.listener]\ntype = "tcp"\n',
        '[[ingresses]]\nname = "scale"\n',
    ]
    out += [
        f'[[ingresses.rules]]\nhostname = "{host(i)}"\nendpoint = "{tunnel_id(i)}"\n'
        for i in range(n)
    ]
    out.append(f'[burrow]\nlog_level = "{log_level}"\n')
    # Loopback load from 8 addresses: the per-source and per-worker caps are for the internet.
    # Held streams are idle by design: the 600 s idle timeout would close them during a slow
    # stream phase (it did, at load average 15, and the tool counted them as held).
    out.append(
        "[burrow.limits]\nmax_connections = 0\nmax_connections_per_source = 0\nidle_timeout = 0\n"
    )
    return "\n".join(out)


def cpu_seconds(proc: Proc) -> float:
    total = 0.0
    for pid in proc.pids():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / TICK
    return total


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] * 1000 if xs else float("nan")


class Loader:
    """One load tool process and its line protocol."""

    def __init__(
        self, procs: Procs, tmp: Path, ports: tuple[int, int], n: int, offset: int = 0
    ) -> None:
        args = [sys.executable, str(HERE / "scale_load.py"), "--relay", str(ports[0])]
        args += ["--entry", str(ports[1]), "--tunnels", str(n), "--offset", str(offset)]
        self.proc = procs.start(args, tmp / f"load{n}-{offset}.log", stdin_pipe=True)
        self.proc.ready("READY")

    def send(self, **cmd: Any) -> None:
        p = self.proc.p
        assert p.stdin is not None
        p.stdin.write((json.dumps(cmd) + "\n").encode())
        p.stdin.flush()

    def answer(self, timeout: float = 600.0) -> dict[str, Any]:
        return dict(json.loads(read_line(self.proc, timeout)))

    def ask(self, **cmd: Any) -> dict[str, Any]:
        self.send(**cmd)
        return self.answer()


def read_line(proc: Proc, timeout: float) -> str:
    """The next stdout line of ``proc`` (sharing Proc.ready's buffer)."""
    assert proc.p.stdout is not None
    fd = proc.p.stdout.fileno()
    deadline = time.monotonic() + timeout
    while b"\n" not in proc.out:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise RuntimeError(f"load tool silent for {timeout} s: {proc.log.read_text()[-2000:]}")
        chunk = os.read(fd, 65536)
        if not chunk:
            raise RuntimeError(f"load tool exited: {proc.log.read_text()[-2000:]}")
        proc.out += chunk
    raw, _, proc.out = proc.out.partition(b"\n")
    return raw.decode()


def start_server(
    procs: Procs, tmp: Path, n: int, workers: int, a: argparse.Namespace
) -> tuple[Proc, tuple[int, int]]:
    cfg = tmp / f"scale{n}.toml"
    cfg.write_text(config(n, a.log_level))
    args = ["-C", str(cfg), "--workers", str(workers), *a.burrow_args.split()]
    server = procs.burrow(args, tmp / f"server{n}-{workers}.log")
    ready = server.ready(timeout=120)
    relay = int(ready["server/relay"].rsplit(":", 1)[1])
    entry = int(ready["server/entrypoint"].rsplit(":", 1)[1])
    return server, (relay, entry)


class Profile:
    """py-spy record on every server process for one phase (``--profile DIR``), raw stacks."""

    def __init__(self, server: Proc, out: Path | None, phase: str) -> None:
        self.spies: list[subprocess.Popen[bytes]] = []
        if out is None:
            return
        out.mkdir(parents=True, exist_ok=True)
        for k, pid in enumerate(sorted(server.pids())):
            name = "supervisor" if k == 0 else f"worker{k}"
            cmd = ["py-spy", "record", "-p", str(pid), "-r", "200", "-f", "raw", "-o"]
            cmd.append(str(out / f"{phase}-{name}.txt"))
            self.spies.append(
                subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
        time.sleep(1.0)  # py-spy attaches (settling, not synchronisation)

    def stop(self) -> None:
        for p in self.spies:
            p.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        for p in self.spies:
            p.wait(30)


def bind(load: Loader, server: Proc, n: int, tag: str) -> None:
    s0, l0 = cpu_seconds(server), cpu_seconds(load.proc)
    b = load.ask(op="bind")
    s1, l1 = cpu_seconds(server), cpu_seconds(load.proc)
    rate = b["ok"] / b["seconds"] if b["seconds"] else 0.0
    print(f"{tag}: registered {b['ok']} in {b['seconds']:.2f} s ({rate:.0f} BINDs/s), "
          f"{b['fail']} failed; CPU meanwhile: server {s1 - s0:.2f} s "
          f"({(s1 - s0) / max(n, 1) * 1e6:.0f} us/BIND), load tool {b.get('cpu', 0):.2f} s "
          f"while binding ({b.get('cpu', 0) / max(n, 1) * 1e6:.0f} us/BIND), {l1 - l0:.2f} s "
          "with its hand-over to its loop",
          flush=True)  # fmt: skip


def run_tunnels(procs: Procs, tmp: Path, n: int, a: argparse.Namespace) -> None:
    """Registration, idle memory and CPU, routing latency at ``n`` tunnels, 2 workers."""
    server, ports = start_server(procs, tmp, n, 2, a)
    tag = f"N={n}"
    time.sleep(1.0)  # measurement settling (not synchronisation): start-up garbage goes
    rss0, pss0 = server.memory_mb()
    load = Loader(procs, tmp, ports, n)
    spy = Profile(server, a.profile, f"{n}-bind")
    bind(load, server, n, tag)
    spy.stop()
    time.sleep(2.0)  # settling: both workers take every membership delta before the window
    c0, t0 = cpu_seconds(server), time.monotonic()
    time.sleep(a.idle_seconds)
    idle = (cpu_seconds(server) - c0) / (time.monotonic() - t0) * 100
    if a.profile:  # after the CPU window: py-spy's own cost must not count
        spy = Profile(server, a.profile, f"{n}-idle")
        time.sleep(a.idle_seconds)
        spy.stop()
    rss1, pss1 = server.memory_mb()
    alive = load.ask(op="alive")
    print(f"{tag}: idle CPU {idle:.1f}% of a core over {a.idle_seconds:.0f} s; memory above "
          f"the idle server: RSS {(rss1 - rss0) * 1024 / n:.1f} KB/tunnel, PSS "
          f"{(pss1 - pss0) * 1024 / n:.1f} KB/tunnel (idle server RSS {rss0:.1f} MB, PSS "
          f"{pss0:.1f} MB); {alive['alive']}/{n} tunnels alive", flush=True)  # fmt: skip
    spy = Profile(server, a.profile, f"{n}-route")
    r = load.ask(op="route", n=a.route)
    spy.stop()
    e, c = r["entry"], r["connect"]
    print(f"{tag}: route p50/p99 entry point {pct(e, .5):.2f}/{pct(e, .99):.2f} ms, relay "
          f"CONNECT {pct(c, .5):.2f}/{pct(c, .99):.2f} ms, {r['fail']} failed of {a.route}",
          flush=True)  # fmt: skip
    procs.stop(load.proc)
    procs.stop(server)


def run_streams(
    procs: Procs, tmp: Path, n: int, ms: list[int], fds: int, a: argparse.Namespace
) -> None:
    """Open streams held over ``n`` tunnels, cumulatively to each of ``ms``."""
    per_proc = int(fds * 0.7)  # SO_REUSEPORT and handoffs spread visitors unevenly
    workers = max(2, -(-(n + max(ms)) // per_proc))
    server, ports = start_server(procs, tmp, n, workers, a)
    load = Loader(procs, tmp, ports, n)
    bind(load, server, n, f"N={n} workers={workers}")
    tools = -(-max(ms) // per_proc)
    step = max(ms) // tools + 1
    visitors = [Loader(procs, tmp, ports, n, offset=k * step) for k in range(tools)]
    time.sleep(2.0)  # settling before the tunnels-only memory figure
    rss1, pss1 = server.memory_mb()
    for m in ms:
        for v in visitors:
            v.send(op="hold", m=-(-m // tools), conc=max(32, 256 // tools))
        # No fixed 600 s here: on a starved host a step of 50,000 took longer (the tools log
        # their progress every 15 s, so a stuck one still shows).
        hs = [v.answer(timeout=3600.0) for v in visitors]
        held = sum(h["held"] for h in hs)
        fail = sum(h["fail"] for h in hs)
        kinds = {k: sum(h["why"][k] for h in hs) for k in hs[0]["why"]}
        still = sum(h["open"] for h in hs)
        secs = max(h["seconds"] for h in hs)
        time.sleep(1.0)  # settling before reading memory
        rss2, pss2 = server.memory_mb()
        alive = load.ask(op="alive")
        div = max(held, 1) / 1024
        print(f"N={n} M={m}: {held} streams held ({fail} failed: {kinds['timeout']} timed out "
              f"twice after {HOLD_TIMEOUT:.0f} s, {kinds['refused']} refused, {kinds['closed']} "
              f"closed; {kinds.get('retried', 0)} held or failed on a second attempt after a "
              f"first timed out) in {secs:.1f} s by "
              f"{workers} workers; above tunnels only: RSS {(rss2 - rss1) / div:.2f} KB/stream, "
              f"PSS {(pss2 - pss1) / div:.2f} KB/stream; server RSS {rss2:.0f} MB, PSS "
              f"{pss2:.0f} MB; {alive['alive']}/{n} tunnels alive, {still} of the held "
              "streams still open", flush=True)  # fmt: skip
    for v in visitors:
        procs.stop(v.proc)
    procs.stop(load.proc)
    procs.stop(server)


def snapshot_time(n: int) -> None:
    """What a restarting worker waits for: build, encode, decode and apply an n-entry snapshot."""
    from burrow.ipc.membership import MembershipView, Registry
    from burrow.ipc.messages import ConnectorInfo, Snapshot, decode_reply, encode

    reg = Registry()
    for i in range(n):
        cid = f"c0ffee00-0000-4000-8000-{i:012x}"
        reg.up(ConnectorInfo(tunnel_id(i), cid, i & 1, "tcp", 0, "relay", "127.0.0.2:1", 0.0))
    t0 = time.perf_counter()
    data = encode(reg.snapshot())
    view = MembershipView()
    snap = decode_reply(data)
    assert isinstance(snap, Snapshot)
    view.on_snapshot(snap)
    dt = time.perf_counter() - t0
    print(f"snapshot of {n} connectors: {len(data) / 1024:.0f} KB, {dt * 1000:.1f} ms "
          "(build + encode + decode + apply)", flush=True)  # fmt: skip


def main() -> None:
    # Stop cleanly (the finally below stops every child) on SIGTERM, and on Ctrl-C even when
    # started in the background of a script (which ignores SIGINT for it).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--tunnels", default="1000,5000,10000")
    ap.add_argument("--streams", default="10000,50000,100000")
    ap.add_argument("--quick", action="store_true", help="1,000 tunnels, 5,000 streams")
    ap.add_argument("--idle-seconds", type=float, default=20.0)
    ap.add_argument("--route", type=int, default=2000, help="requests in the routing sample")
    ap.add_argument("--log-level", default="info")
    ap.add_argument("--burrow-args", default="")
    ap.add_argument("--profile", type=Path, help="py-spy raw stacks per phase and process here")
    a = ap.parse_args()
    if a.quick:
        a.tunnels, a.streams, a.idle_seconds, a.route = "1000", "5000", 10.0, 1000
    ns = [int(x) for x in a.tunnels.split(",")]
    ms = [int(x) for x in a.streams.split(",") if x]
    # One process holds all N tunnel connections (the load tool); stream loads are split.
    need = max(ns) + 2000
    got = raise_files(need)
    if got < need:
        sys.exit(f"scale: need {need} open files per process, RLIMIT_NOFILE allows {got}: "
                 "raise ulimit -Hn (as root: ulimit -n 65536)")  # fmt: skip
    print(f"scale: open-file limit {got} per process; {os.cpu_count()} CPUs", flush=True)
    procs = Procs()
    try:
        d = tempfile.mkdtemp(prefix="burrow-scale-")
        print(f"scale: logs and configs in {d}", flush=True)
        for n in ns:
            run_tunnels(procs, Path(d), n, a)
        snapshot_time(max(ns))
        if ms:
            run_streams(procs, Path(d), max(ns), ms, got, a)
    finally:
        procs.stop_all()


if __name__ == "__main__":
    main()
