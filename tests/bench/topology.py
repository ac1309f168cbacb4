"""The processes under test: backends, iperf3, the TLS wrappers and the Burrow trio.

Hostnames the tunnel client routes on (its rtcp forwarder nodes):
- ``iperf.local``     -> socat TLS terminator B -> iperf3 (reached through the entry point by SNI);
- ``iperf-raw.local`` -> iperf3 directly (reached through the visitor, TCP and UDP);
- ``echo.local``      -> TCP echo backend (visitor);
- ``web.local``       -> HTTP backend (entry point, by Host).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from procs import Proc, Procs, free_port, wait_listening, wait_log

TID = "22f43305-42f7-4232-bbbc-aa6c042e3bc3"
BACKENDS = Path(__file__).with_name("backends.py")


@dataclass
class Backends:
    """Ports of the loopback peers shared by every run (direct baselines use them)."""

    http: int
    echo: int
    iperf: int
    tls_in: int  # socat A (plain TCP in, TLS to B): direct TLS baseline
    tls_term: int  # socat B (TLS in, plain TCP to iperf3)


def make_cert(tmp: Path) -> Path:
    """A throwaway self-signed certificate + key for CN=iperf.local, as one PEM file."""
    key, crt, pem = tmp / "key.pem", tmp / "crt.pem", tmp / "tls.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=iperf.local", "-keyout", str(key), "-out", str(crt)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    pem.write_text(key.read_text() + crt.read_text())
    return pem


def tls_client(procs: Procs, tmp: Path, name: str, upstream: int) -> tuple[Proc, int]:
    """socat: plain TCP in on a new port, TLS with SNI iperf.local out to ``upstream``."""
    port = free_port()
    proc = procs.start(
        [
            "socat",
            f"TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr",
            f"OPENSSL:127.0.0.1:{upstream},snihost=iperf.local,verify=0",
        ],
        tmp / f"{name}.log",
    )
    wait_listening(port)
    return proc, port


def start_backends(procs: Procs, tmp: Path) -> Backends:
    """Start the backend process, iperf3 and the two TLS socats; wait until all listen."""
    back = procs.start([sys.executable, str(BACKENDS)], tmp / "backends.log", stdin_pipe=True)
    ports = back.ready("PORTS", timeout=20)
    iperf_port = free_port()
    procs.start(["iperf3", "-s", "-B", "127.0.0.1", "-p", str(iperf_port)], tmp / "iperf3.log")
    wait_listening(iperf_port)
    pem = make_cert(tmp)
    term = free_port()
    listen = f"OPENSSL-LISTEN:{term},bind=127.0.0.1,fork,reuseaddr,cert={pem},verify=0"
    procs.start(["socat", listen, f"TCP:127.0.0.1:{iperf_port}"], tmp / "socat-term.log")
    wait_listening(term)
    _, tls_in = tls_client(procs, tmp, "socat-direct", term)
    return Backends(
        http=int(ports["http"]),
        echo=int(ports["echo"]),
        iperf=iperf_port,
        tls_in=tls_in,
        tls_term=term,
    )


@dataclass
class Burrow:
    """A running server / client / visitor trio and the ports the benchmark talks to."""

    server: Proc
    client: Proc
    visitor: Proc
    entry: int
    visitor_tcp: int  # iperf3 over the visitor, TCP and UDP on the same port
    visitor_echo: int
    tls_in: int  # socat A' (plain TCP in, TLS with SNI to the entry point)


SERVER_YAML = """
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
  - {{hostname: "iperf.local", endpoint: {tid}}}
  - {{hostname: "iperf-raw.local", endpoint: {tid}}}
  - {{hostname: "echo.local", endpoint: {tid}}}
  - {{hostname: "web.local", endpoint: {tid}}}
"""

CHAIN_YAML = """
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
          tunnelID: {tid}
      dialer:
        type: tcp
"""

CLIENT_YAML = """
services:
- name: rtcp
  addr: :0
  handler: {{type: rtcp}}
  listener: {{type: rtcp, chain: chain-0}}
  forwarder:
    nodes:
    - {{name: iperf-tls, addr: "127.0.0.1:{tls_term}", host: iperf.local}}
    - {{name: iperf-raw, addr: "127.0.0.1:{iperf}", host: iperf-raw.local}}
    - {{name: echo, addr: "127.0.0.1:{echo}", host: echo.local}}
    - {{name: web, addr: "127.0.0.1:{http}", host: web.local}}
- name: rudp
  addr: :0
  handler: {{type: rudp}}
  listener: {{type: rudp, chain: chain-0}}
  forwarder:
    nodes:
    - {{name: iperf-raw, addr: "127.0.0.1:{iperf}", host: iperf-raw.local}}
"""

VISITOR_YAML = """
services:
- name: iperf-tcp
  addr: 127.0.0.1:{vport}
  handler: {{type: tcp, chain: chain-0}}
  listener: {{type: tcp}}
  forwarder: {{nodes: [{{name: iperf, addr: "iperf-raw.local:0"}}]}}
- name: iperf-udp
  addr: 127.0.0.1:{vport}
  handler: {{type: udp, chain: chain-0}}
  listener: {{type: udp, metadata: {{keepalive: true}}}}
  forwarder: {{nodes: [{{name: iperf, addr: "iperf-raw.local:0"}}]}}
- name: echo
  addr: 127.0.0.1:0
  handler: {{type: tcp, chain: chain-0}}
  listener: {{type: tcp}}
  forwarder: {{nodes: [{{name: echo, addr: "echo.local:0"}}]}}
"""


def ready_port(addr: str) -> int:
    """Port of ``host:port`` (a READY field may add ``/udp`` details after a slash)."""
    return int(addr.split("/")[0].rsplit(":", 1)[1])


@contextmanager
def burrow(
    procs: Procs,
    tmp: Path,
    workers: int,
    back: Backends,
    extra: tuple[str, ...] = (),
    server_extra: tuple[str, ...] = (),
) -> Iterator[Burrow]:
    """Run server (``workers``), tunnel client (1 worker) and visitor (``workers``).

    ``extra`` is appended to each of the three Burrow command lines (e.g. --busy-poll-us 0),
    ``server_extra`` to the server's only (e.g. -metrics 127.0.0.1:0).
    """
    started: list[Proc] = []
    try:
        cfg = tmp / f"server{workers}.yaml"
        cfg.write_text(SERVER_YAML.format(tid=TID))
        slog = tmp / f"server{workers}.log"
        server = procs.burrow(
            ["-C", str(cfg), "--workers", str(workers), *extra, *server_extra], slog
        )
        started.append(server)
        ready = server.ready()
        relay, entry = ready_port(ready["server/relay"]), ready_port(ready["server/entrypoint"])
        chain = CHAIN_YAML.format(relay=relay, tid=TID)
        cfg = tmp / f"client{workers}.yaml"
        cfg.write_text(
            CLIENT_YAML.format(
                tls_term=back.tls_term, iperf=back.iperf, echo=back.echo, http=back.http
            )
            + chain
        )
        client = procs.burrow(
            ["-C", str(cfg), "--workers", "1", *extra], tmp / f"client{workers}.log"
        )
        started.append(client)
        client.ready()
        wait_log(slog, "tunnel.up", 2)  # the rtcp and the rudp tunnel
        cfg = tmp / f"visitor{workers}.yaml"
        # iperf3 -u needs its TCP control port and its UDP port to be the same number.
        cfg.write_text(VISITOR_YAML.format(vport=free_port()) + chain)
        visitor = procs.burrow(
            ["-C", str(cfg), "--workers", str(workers), *extra], tmp / f"visitor{workers}.log"
        )
        started.append(visitor)
        vready = visitor.ready()
        socat, tls_in = tls_client(procs, tmp, f"socat-entry{workers}", entry)
        started.append(socat)
        yield Burrow(
            server=server,
            client=client,
            visitor=visitor,
            entry=entry,
            visitor_tcp=ready_port(vready["iperf-tcp/visitor"]),
            visitor_echo=ready_port(vready["echo/visitor"]),
            tls_in=tls_in,
        )
    finally:
        for p in reversed(started):
            procs.stop(p)
