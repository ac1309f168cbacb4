"""The full tunnel path over each relay transport, in one run: `python3 tests/bench/transports.py`.

For tcp, tls, ws and wss in turn: a Burrow server whose relay port uses the transport and a
tunnel client whose chain dials it (tls/wss verify the server: secure, serverName, a trustme CA).
Two paths, each with the Gbit/s, the ratio to plain tcp measured in the same run, and the CPU
milliseconds each Burrow process spent per MB (direct loopback is shown for scale):
- entry point (the issue's path; one hop over the transport): bulk HTTP (tests/bench/bulk.py)
  POST and GET through the server's entry point, routed by Host to the tunnel client's backend;
- visitor: iperf3 TCP through client -> visitor -> server -> tunnel client -> iperf3 -s, both
  relay hops over the transport (TLS encrypts and decrypts every byte twice).
Options: --seconds N (default 5), --streams N (iperf3 -P, default 1), --transports tcp,tls,wss,
--paths up,down,visitor, --rounds N (alternate the transports N times; median ratios at the
end). Never run by CI (pytest ignores tests/bench).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import trustme

sys.path.insert(0, str(Path(__file__).parent))

import bulk
import load
from procs import Proc, Procs, free_port, wait_listening, wait_log
from topology import ready_port

TID = "22f43305-42f7-4232-bbbc-aa6c042e3bc3"
NAME = "relay.bench"
NAME_ENTRY = "bulk.local"  # the Host the entry point routes to the bulk backend

SERVER = """
services:
- name: server
  addr: 127.0.0.1:0
  handler: {{type: relay, metadata: {{entryPoint: "127.0.0.1:0", ingress: ingress-0}}}}
  listener: {{type: {kind}{tls}}}
ingresses:
- name: ingress-0
  rules:
  - {{hostname: "iperf.local", endpoint: {tid}}}
  - {{hostname: "bulk.local", endpoint: {tid}}}
"""

CHAIN = """
chains:
- name: chain-0
  hops:
  - name: hop-0
    nodes:
    - name: node-0
      addr: 127.0.0.1:{relay}
      connector: {{type: relay, metadata: {{tunnelID: {tid}}}}}
      dialer: {{type: {kind}{tls}}}
"""

CLIENT = """
services:
- name: rtcp
  addr: :0
  handler: {{type: rtcp}}
  listener: {{type: rtcp, chain: chain-0}}
  forwarder:
    nodes:
    - {{name: iperf, addr: "127.0.0.1:{iperf}", host: iperf.local}}
    - {{name: bulk, addr: "127.0.0.1:{bulk}", host: bulk.local}}
"""

VISITOR = """
services:
- name: iperf
  addr: 127.0.0.1:0
  handler: {{type: tcp, chain: chain-0}}
  listener: {{type: tcp}}
  forwarder: {{nodes: [{{name: iperf, addr: "iperf.local:0"}}]}}
"""


def cpu_seconds(group: list[Proc]) -> float:
    """utime + stime of every process of the groups (supervisors and workers) so far."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for proc in group:
        for pid in proc.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])
    return total / tick


def per_mb(group: list[Proc], before: list[float], moved: int) -> list[float]:
    """CPU milliseconds per MB moved, per Burrow process group (server, client, visitor)."""
    return [(cpu_seconds([p]) - b) * 1e3 / (moved / 1e6) for p, b in zip(group, before)]


def measure(
    procs: Procs,
    tmp: Path,
    kind: str,
    ports: dict[str, int],
    pems: dict[str, str],
    args: argparse.Namespace,
) -> dict[str, tuple[float, list[float]]]:
    """Gbit/s over ``kind``: bulk HTTP through the entry point (server + client: one hop over
    the transport), then iperf3 through the visitor (server + client + visitor: two hops);
    with each, the CPU milliseconds all Burrow processes spent per MB moved."""
    tls_on = kind in ("tls", "wss")
    stls = f", tls: {{certFile: {pems['cert']}, keyFile: {pems['key']}}}" if tls_on else ""
    ctls = f", tls: {{caFile: {pems['ca']}, secure: true, serverName: {NAME}}}" if tls_on else ""
    started = []
    got: dict[str, tuple[float, list[float]]] = {}
    try:
        cfg = tmp / f"server-{kind}.yaml"
        cfg.write_text(SERVER.format(tid=TID, kind=kind, tls=stls))
        slog = tmp / f"server-{kind}.log"
        server = procs.burrow(["-C", str(cfg), "--workers", "1"], slog)
        started.append(server)
        ready = server.ready()
        relay = ready_port(ready["server/relay"])
        chain = CHAIN.format(relay=relay, tid=TID, kind=kind, tls=ctls)
        cfg = tmp / f"client-{kind}.yaml"
        cfg.write_text(CLIENT.format(iperf=ports["iperf"], bulk=ports["bulk"]) + chain)
        client = procs.burrow(["-C", str(cfg), "--workers", "1"], tmp / f"client-{kind}.log")
        started.append(client)
        client.ready()
        wait_log(slog, "tunnel.up", 1)
        entry = ready_port(next(v for k, v in ready.items() if "entry" in k))
        for way in args.entry:
            before = [cpu_seconds([p]) for p in started]
            gbps, moved = bulk.measure(way, entry, NAME_ENTRY, args.seconds)
            got[f"entry {way}"] = (gbps, per_mb(started, before, moved))
        if not args.visitor:
            return got
        cfg = tmp / f"visitor-{kind}.yaml"
        cfg.write_text(VISITOR.format() + chain)
        visitor = procs.burrow(["-C", str(cfg), "--workers", "1"], tmp / f"visitor-{kind}.log")
        started.append(visitor)
        vport = ready_port(visitor.ready()["iperf/visitor"])
        before = [cpu_seconds([p]) for p in started]
        gbps = load.iperf(vport, "-P", str(args.streams), seconds=args.seconds)
        got["visitor"] = (gbps, per_mb(started, before, int(gbps * 1e9 / 8 * args.seconds)))
        return got
    finally:
        for p in reversed(started):
            procs.stop(p)


ROWS = {
    "entry up": "entry point, bulk upload (POST): public -> server -> {k} -> client -> backend",
    "entry down": "entry point, bulk download (GET): backend -> client -> {k} -> server -> public",
    "visitor": "visitor, iperf3: visitor -> {k} -> server -> {k} -> client -> iperf3 -s",
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--streams", type=int, default=1)
    ap.add_argument("--transports", default="tcp,tls,ws,wss")
    ap.add_argument("--paths", default="up,down,visitor", help="up,down (entry point),visitor")
    ap.add_argument("--rounds", type=int, default=1, help="repeat, then print median ratios")
    args = ap.parse_args()
    kinds = [k for k in args.transports.split(",") if k]
    paths = args.paths.split(",")
    args.entry = [w for w in ("up", "down") if w in paths]
    args.visitor = "visitor" in paths
    # The Burrow processes run this checkout's code, whatever is installed.
    root = Path(__file__).resolve().parents[2]
    code = [str(root / d) for d in ("shared", "worker", "supervisor")]
    os.environ["PYTHONPATH"] = os.pathsep.join(code + [os.environ.get("PYTHONPATH", "")])
    procs = Procs()
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="burrow-bench-tr-") as d:
        tmp = Path(d)
        ca = trustme.CA()
        cert = ca.issue_cert(NAME)
        pems = {"ca": str(tmp / "ca.pem"), "cert": str(tmp / "s.pem"), "key": str(tmp / "s.key")}
        ca.cert_pem.write_to_path(pems["ca"])
        cert.cert_chain_pems[0].write_to_path(pems["cert"])
        cert.private_key_pem.write_to_path(pems["key"])
        ports = {"iperf": free_port()}
        iperf = ["iperf3", "-s", "-B", "127.0.0.1", "-p", str(ports["iperf"])]
        procs.start(iperf, tmp / "iperf.log")
        wait_listening(ports["iperf"])
        back = procs.start([sys.executable, bulk.__file__, "serve"], tmp / "b.log", stdin_pipe=True)
        ports["bulk"] = int(back.ready("PORTS")["port"])
        try:
            direct: dict[str, float] = {}
            for way in args.entry:
                gbps, _ = bulk.measure(way, ports["bulk"], NAME_ENTRY, args.seconds)
                direct[f"entry {way}"] = gbps
            if args.visitor:
                direct["visitor"] = load.iperf(
                    ports["iperf"], "-P", str(args.streams), seconds=args.seconds
                )
            # Rounds alternate the transports, so a busy spell hits each of them alike.
            rounds = [
                {k: measure(procs, tmp, k, ports, pems, args) for k in kinds}
                for _ in range(args.rounds)
            ]
        finally:
            procs.stop_all()
    print(f"Machine: {platform.processor() or platform.machine()}, Python "
          f"{platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M')}, "
          f"wall {time.monotonic() - began:.0f} s, -t {args.seconds}, iperf3 -P {args.streams}, "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    for got in rounds:
        table(direct, got)
    if len(rounds) > 1 and "tcp" in kinds:
        print()
        print(f"| ratio to tcp over {len(rounds)} rounds | median | min | max |")
        print("|---|---|---|---|")
        for row in (r for r in ROWS if r in direct):
            for k in kinds[1:] if kinds[0] == "tcp" else [k for k in kinds if k != "tcp"]:
                ratios = sorted(g[k][row][0] / g["tcp"][row][0] for g in rounds)
                print(f"| {row}, {k} | {statistics.median(ratios):.2f}x | {ratios[0]:.2f}x "
                      f"| {ratios[-1]:.2f}x |")  # fmt: skip


def table(direct: dict[str, float], got: dict[str, dict[str, tuple[float, list[float]]]]) -> None:
    """One round's tables: Gbit/s, ratio to tcp and CPU per MB, per path."""
    for row, title in ROWS.items():
        if row not in direct:
            continue
        print()
        who = "server + client" + (" + visitor" if row == "visitor" else "")
        print(f"| {title.format(k='transport')} | Gbit/s | vs tcp | CPU ms/MB: {who} |")
        print("|---|---|---|---|")
        print(f"| direct loopback (no Burrow) | {direct[row]:.2f} | | |")
        base = got["tcp"][row][0] if "tcp" in got else 0.0
        for k, v in got.items():
            gbps, cpu = v[row]
            ratio = f"{gbps / base:.2f}x" if base else ""
            split = " + ".join(f"{c:.2f}" for c in cpu)
            print(f"| {k} | {gbps:.2f} | {ratio} | {sum(cpu):.2f} = {split} |")


if __name__ == "__main__":
    main()
