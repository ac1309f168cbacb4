"""Idle memory of a tunnel client and a visitor: `python3 tests/bench/oneproc_rss.py`.

Starts a backend process (HTTP + echo) and a Burrow server (relay + entry point, 1 worker), then
for each mode a tunnel client (rtcp: echo and web targets) and a TCP visitor (echo) connected
to that server: one-process mode (no --workers, the default for such configs) and the pool
(--workers 1 and 2; 2 was the default on this 2-core machine before). Each pair is checked end
to end (an echo through visitor -> server -> client -> backend, an HTTP request through the
entry point), left idle for IDLE seconds, then measured: VmRSS and PSS summed over the process
group (a pool counts its supervisor and workers), and the processes and threads. A bare
`python3 -c 'import time; time.sleep(60)'` is measured in the same run as the floor.
Prints a markdown table for BENCHMARKS.md. Never run by CI (pytest ignores tests/bench).
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
REPO = Path(__file__).resolve().parents[2]
# Measure the checkout this script is in, whatever `burrow` is installed.
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(REPO / d) for d in ("shared", "worker", "supervisor")]
    + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])
)

from procs import Proc, Procs, wait_log
from topology import BACKENDS, CHAIN_YAML, SERVER_YAML, TID, ready_port

IDLE = 2.0  # seconds left idle after the first requests, before measuring
IO_TIMEOUT = 10.0

CLIENT_YAML = """
services:
- name: rtcp
  addr: :0
  handler: {{type: rtcp}}
  listener: {{type: rtcp, chain: chain-0}}
  forwarder:
    nodes:
    - {{name: echo, addr: "127.0.0.1:{echo}", host: echo.local}}
    - {{name: web, addr: "127.0.0.1:{http}", host: web.local}}
"""

VISITOR_YAML = """
services:
- name: echo
  addr: 127.0.0.1:0
  handler: {{type: tcp, chain: chain-0}}
  listener: {{type: tcp}}
  forwarder: {{nodes: [{{name: echo, addr: "echo.local:0"}}]}}
"""


def echo_once(port: int) -> None:
    """One round trip through the visitor; raises if the bytes do not come back."""
    with socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT) as s:
        s.sendall(b"ping")
        got = b""
        while len(got) < 4:
            chunk = s.recv(4 - len(got))
            if not chunk:
                break
            got += chunk
    if got != b"ping":
        raise RuntimeError(f"echo through the visitor returned {got!r}")


def http_once(port: int) -> None:
    """One GET for web.local through the entry point; raises unless it answers 200 ok."""
    with socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: web.local\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    if not data.startswith(b"HTTP/1.1 200") or not data.endswith(b"ok"):
        raise RuntimeError(f"HTTP through the entry point returned {data[:80]!r}")


def threads(pid: int) -> int:
    """The Threads: count of ``pid`` (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Threads:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def measure(proc: Proc) -> tuple[float, float, int, int]:
    """(RSS MB, PSS MB, processes, threads) over the process group."""
    rss, pss = proc.memory_mb()
    pids = proc.pids()
    return rss, pss, len(pids), sum(threads(p) for p in pids)


def main() -> int:
    """Run the modes, print the table."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--pools", type=int, nargs="*", default=[1, 2], help="pool sizes to compare")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="burrow-rss-"))
    procs = Procs()
    rows: list[str] = []
    try:
        baseline = procs.start(
            [sys.executable, "-c", "import time; time.sleep(60)"], tmp / "baseline.log"
        )
        back = procs.start([sys.executable, str(BACKENDS)], tmp / "backends.log", stdin_pipe=True)
        ports = back.ready("PORTS", timeout=20)
        cfg = tmp / "server.yaml"
        cfg.write_text(SERVER_YAML.format(tid=TID))
        slog = tmp / "server.log"
        server = procs.burrow(["-C", str(cfg), "--workers", "1"], slog)
        ready = server.ready()
        relay, entry = ready_port(ready["server/relay"]), ready_port(ready["server/entrypoint"])
        chain = CHAIN_YAML.format(relay=relay, tid=TID)
        modes: list[tuple[str, str, list[str]]] = [("oneproc", "one process (default)", [])]
        modes += [(f"pool{n}", f"pool, --workers {n}", ["--workers", str(n)]) for n in args.pools]
        ups = 0
        for tag, label, flags in modes:
            ccfg, vcfg = tmp / f"client-{tag}.yaml", tmp / f"visitor-{tag}.yaml"
            ccfg.write_text(CLIENT_YAML.format(echo=ports["echo"], http=ports["http"]) + chain)
            vcfg.write_text(VISITOR_YAML.format() + chain)
            client = procs.burrow(["-C", str(ccfg), *flags], tmp / f"client-{tag}.log")
            cready = client.ready()
            ups += int(cready.get("workers", "1"))
            wait_log(slog, "tunnel.up", ups)  # every worker of this client registered
            visitor = procs.burrow(["-C", str(vcfg), *flags], tmp / f"visitor-{tag}.log")
            vport = ready_port(visitor.ready()["echo/visitor"])
            echo_once(vport)
            http_once(entry)
            time.sleep(IDLE)  # idle on purpose: the figure is the idle footprint
            for role, proc in (("tunnel client", client), ("TCP visitor", visitor)):
                rss, pss, n, t = measure(proc)
                rows.append(f"| {role} | {label} | {n} / {t} | {rss:.1f} MB | {pss:.1f} MB |")
            procs.stop(visitor)
            procs.stop(client)
        rss, pss, n, t = measure(baseline)
        rows.append(f"| bare `python3 -c 'import time; time.sleep(60)'` | - | {n} / {t} | "
                    f"{rss:.1f} MB | {pss:.1f} MB |")  # fmt: skip
    finally:
        procs.stop_all()
    stray = procs.leftovers(str(tmp))
    command = " ".join(["python3 tests/bench/oneproc_rss.py", *sys.argv[1:]])
    print(f"Command: `{command}`")
    print(f"Idle {IDLE:g} s after one echo through the visitor and one HTTP request through the "
          "entry point; RSS (VmRSS) and PSS summed over the process group.")  # fmt: skip
    print()
    print("| process | mode | processes / threads | RSS | PSS |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))
    if stray:
        print("STRAY PROCESSES LEFT:\n" + "\n".join(stray), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
