"""End-to-end UDP over tunnels: DNS via a udp visitor (seed 09/10), iperf3 (seed 11/12/13)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e.conftest import TUNNEL_IPERF, TUNNEL_SVC
from e2e.harness import (
    Launcher,
    client_config,
    client_service,
    forward_node,
    server_config,
    visitor_config,
    visitor_service,
    wait_for,
)
from e2e.peers import DnsPeer, UdpEchoPeer, dns_query, parse_dns_answer, udp_roundtrip

DIALECTS = ["relay", "tunnel"]
UP_TIMEOUT = 8.0
IPERF_TIMEOUT = 15.0


def free_tcp_udp_port() -> int:
    """A port number free for both TCP and UDP on 127.0.0.1 (iperf3 -u needs both on one port)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no port free for both TCP and UDP")


def start_pair(
    burrow: Launcher,
    rule: str,
    tunnel: str,
    client_services: list,
    dialect: str,
    entrypoint: bool = True,
):
    """Server (2 workers) plus a tunnel client that reports tunnel.up."""
    server = burrow.start(
        "server", server_config([(rule, tunnel)], dialect=dialect, entrypoint=entrypoint), workers=2
    )
    relay = server.listener("relay").address
    client = burrow.start("client", client_config(relay, tunnel, client_services, dialect=dialect))
    client.wait_log(r"tunnel\.up", timeout=UP_TIMEOUT)
    return server, client


@pytest.mark.parametrize("dialect", DIALECTS)
def test_dns_through_udp_visitor(burrow: Launcher, dns_peer: DnsPeer, dialect: str) -> None:
    """Seed 09/10: a non-keepalive udp visitor carries a DNS query and its answer."""
    other = DnsPeer("10.9.9.9")
    try:
        server, _ = start_pair(
            burrow,
            "dns.srv-2.local",
            TUNNEL_SVC,
            [
                client_service(
                    "service-0",
                    [
                        forward_node("dns-1", dns_peer.address, "dns.srv-2.local"),
                        forward_node("dns-2", other.address, "dns.srv-3.local"),
                    ],
                    udp=True,
                ),
            ],
            dialect,
        )
        relay = server.listener("relay").address
        visitor = burrow.start(
            "visitor",
            visitor_config(
                relay,
                TUNNEL_SVC,
                [
                    visitor_service("service-0", target="dns.srv-2.local:0", udp=True),
                ],
                dialect=dialect,
            ),
        )
        dns = visitor.listener("visitor", udp=True)
        target = (dns.host, dns.port)

        def probe() -> tuple[int, str]:
            return parse_dns_answer(
                udp_roundtrip(target, dns_query(0x1234, "www.example.com"), 1.0)
            )

        assert wait_for("DNS answer through the visitor", probe, UP_TIMEOUT) == (0x1234, "10.1.2.3")
        # Further queries from new source ports are new sessions; each gets its own answer.
        for qid in (1, 2, 3):
            reply = udp_roundtrip(target, dns_query(qid, f"q{qid}.example.com"), 3.0)
            assert parse_dns_answer(reply) == (qid, "10.1.2.3")
        assert other.received == 0
    finally:
        other.close()


@pytest.mark.parametrize("dialect", DIALECTS)
def test_udp_echo_keepalive_session(
    burrow: Launcher, udp_echo_peer: UdpEchoPeer, dialect: str
) -> None:
    """A keepalive udp visitor keeps one session: datagrams of many sizes come back intact."""
    server, _ = start_pair(
        burrow,
        "echo.local",
        TUNNEL_SVC,
        [
            client_service("service-0", [forward_node("echo", udp_echo_peer.address)], udp=True),
        ],
        dialect,
    )
    relay = server.listener("relay").address
    visitor = burrow.start(
        "visitor",
        visitor_config(
            relay,
            TUNNEL_SVC,
            [
                visitor_service("service-0", target="echo.local:0", udp=True, keepalive=True),
            ],
            dialect=dialect,
        ),
    )
    item = visitor.listener("visitor", udp=True)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(1.0)

        def probe() -> bytes:
            sock.sendto(b"hello", (item.host, item.port))
            while True:
                data, _ = sock.recvfrom(65535)
                if data == b"hello":
                    return data

        wait_for("first echo", probe, UP_TIMEOUT)
        sock.settimeout(3.0)
        for size in (1, 100, 1400, 8000, 65000):
            payload = bytes([size % 251]) * size
            sock.sendto(payload, (item.host, item.port))
            assert sock.recvfrom(65535)[0] == payload


@pytest.fixture
def iperf_server(tmp_path: Path) -> Iterator[int]:
    """iperf3 -s on 127.0.0.1 at a port free for TCP and UDP; yields the port."""
    if shutil.which("iperf3") is None:
        pytest.fail("iperf3 is not installed (apt-get install iperf3)")
    port = free_tcp_udp_port()
    log = tmp_path / "iperf3-server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["iperf3", "-s", "-B", "127.0.0.1", "-p", str(port), "--forceflush"],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        wait_for(
            "iperf3 server listening",
            lambda: True if "listening" in log.read_text() else None,
            10.0,
        )
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def run_iperf(port: int, *extra: str) -> dict:
    """One short iperf3 client run against the visitor port; its parsed JSON report."""
    done = subprocess.run(
        ["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", "2", "-J", *extra],
        capture_output=True,
        timeout=IPERF_TIMEOUT,
        check=False,
    )
    report = json.loads(done.stdout or b"{}")
    assert done.returncode == 0 and "error" not in report, (
        done.returncode,
        report.get("error"),
        done.stderr,
    )
    return report


@pytest.mark.parametrize("dialect", DIALECTS)
def test_iperf3_tcp_and_udp(burrow: Launcher, iperf_server: int, dialect: str) -> None:
    """Seed 11/12/13 (13's duplicate services: merged): iperf3 TCP and UDP through the tunnel."""
    target = f"127.0.0.1:{iperf_server}"
    server, client = start_pair(
        burrow,
        "iperf.local",
        TUNNEL_IPERF,
        [
            client_service("iperf-tcp", [forward_node("iperf", target, "iperf.local")]),
            client_service("iperf-udp", [forward_node("iperf", target, "iperf.local")], udp=True),
        ],
        dialect,
        entrypoint=False,
    )
    # Both services of the client register their own tunnel connection.
    client.wait_log(r"tunnel\.up", timeout=UP_TIMEOUT, count=2)
    relay = server.listener("relay").address
    port = free_tcp_udp_port()
    cfg = visitor_config(
        relay,
        TUNNEL_IPERF,
        [
            visitor_service("iperf-tcp", target="iperf.local:0"),
            visitor_service("iperf-udp", target="iperf.local:0", udp=True, keepalive=True),
        ],
        dialect=dialect,
    )
    for svc in cfg["services"]:
        svc["addr"] = f"127.0.0.1:{port}"
    burrow.start("visitor", cfg)

    tcp = run_iperf(port)
    assert tcp["end"]["sum_received"]["bytes"] > 1_000_000
    udp = run_iperf(port, "-u", "-b", "10M")
    summary = udp["end"]["sum"]
    assert summary["bytes"] > 100_000
    assert summary["packets"] > 0 and summary["lost_percent"] < 50
