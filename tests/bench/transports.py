"""The full tunnel path over each relay transport, in one run: `python3 tests/bench/transports.py`.

For tcp, tls, ws and wss in turn: a Burrow server whose relay port uses the transport, a tunnel
client and a visitor whose chains dial it (tls/wss verify the server: secure, serverName, a
trustme CA), then iperf3 TCP through the visitor: client -> visitor -> server -> tunnel client
-> iperf3 -s, both tunnel hops over the transport. Ratios are to plain tcp measured in the same
run (and direct loopback is shown for scale). Options: --seconds N (default 5), --streams N
(iperf3 -P, default 1), --transports tcp,tls,wss. Never run by CI (pytest ignores tests/bench).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import trustme

sys.path.insert(0, str(Path(__file__).parent))

import load
from procs import Procs, free_port, wait_listening, wait_log
from topology import ready_port

TID = "22f43305-42f7-4232-bbbc-aa6c042e3bc3"
NAME = "relay.bench"

SERVER = """
services:
- name: server
  addr: 127.0.0.1:0
  handler: {{type: relay, metadata: {{tunnel: "iperf.local:{tid}"}}}}
  listener: {{type: {kind}{tls}}}
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
  forwarder: {{nodes: [{{name: iperf, addr: "127.0.0.1:{iperf}"}}]}}
"""

VISITOR = """
services:
- name: iperf
  addr: 127.0.0.1:0
  handler: {{type: tcp, chain: chain-0}}
  listener: {{type: tcp}}
  forwarder: {{nodes: [{{name: iperf, addr: "iperf.local:0"}}]}}
"""


def measure(
    procs: Procs,
    tmp: Path,
    kind: str,
    iperf_port: int,
    pems: dict[str, str],
    args: argparse.Namespace,
) -> float:
    """Gbit/s of iperf3 through server + client + visitor over ``kind``."""
    tls_on = kind in ("tls", "wss")
    stls = f", tls: {{certFile: {pems['cert']}, keyFile: {pems['key']}}}" if tls_on else ""
    ctls = f", tls: {{caFile: {pems['ca']}, secure: true, serverName: {NAME}}}" if tls_on else ""
    started = []
    try:
        cfg = tmp / f"server-{kind}.yaml"
        cfg.write_text(SERVER.format(tid=TID, kind=kind, tls=stls))
        slog = tmp / f"server-{kind}.log"
        server = procs.burrow(["-C", str(cfg), "--workers", "1"], slog)
        started.append(server)
        relay = ready_port(server.ready()["server/relay"])
        chain = CHAIN.format(relay=relay, tid=TID, kind=kind, tls=ctls)
        cfg = tmp / f"client-{kind}.yaml"
        cfg.write_text(CLIENT.format(iperf=iperf_port) + chain)
        client = procs.burrow(["-C", str(cfg), "--workers", "1"], tmp / f"client-{kind}.log")
        started.append(client)
        client.ready()
        wait_log(slog, "tunnel.up", 1)
        cfg = tmp / f"visitor-{kind}.yaml"
        cfg.write_text(VISITOR.format() + chain)
        visitor = procs.burrow(["-C", str(cfg), "--workers", "1"], tmp / f"visitor-{kind}.log")
        started.append(visitor)
        vport = ready_port(visitor.ready()["iperf/visitor"])
        return load.iperf(vport, "-P", str(args.streams), seconds=args.seconds)
    finally:
        for p in reversed(started):
            procs.stop(p)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--streams", type=int, default=1)
    ap.add_argument("--transports", default="tcp,tls,ws,wss")
    args = ap.parse_args()
    kinds = [k for k in args.transports.split(",") if k]
    # The Burrow processes run this checkout's code, whatever is installed.
    root = Path(__file__).resolve().parents[2]
    paths = [str(root / d) for d in ("shared", "worker", "supervisor")]
    os.environ["PYTHONPATH"] = os.pathsep.join(paths + [os.environ.get("PYTHONPATH", "")])
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
        iperf_port = free_port()
        procs.start(["iperf3", "-s", "-B", "127.0.0.1", "-p", str(iperf_port)], tmp / "iperf.log")
        wait_listening(iperf_port)
        try:
            direct = load.iperf(iperf_port, "-P", str(args.streams), seconds=args.seconds)
            got = {k: measure(procs, tmp, k, iperf_port, pems, args) for k in kinds}
        finally:
            procs.stop_all()
    print(f"Machine: {platform.processor() or platform.machine()}, Python "
          f"{platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M')}, "
          f"wall {time.monotonic() - began:.0f} s, iperf3 -P {args.streams} -t {args.seconds}")  # fmt: skip
    print()
    print("| transport (full path) | Gbit/s | vs tcp |")
    print("|---|---|---|")
    print(f"| direct loopback (no Burrow) | {direct:.2f} | |")
    base = got.get("tcp")
    for k, v in got.items():
        ratio = f"{v / base:.2f}x" if base else ""
        print(f"| {k} | {v:.2f} | {ratio} |")


if __name__ == "__main__":
    main()
