"""IPv6 literals end to end: relay port, entry point, clients, visitors and targets all on ::1.

The server comes from a gost YAML file, the clients and visitors from gost command lines
(`-L rtcp://:0/[::1]:port -F relay://[::1]:port?...`), so both config paths take `[::1]:port`.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from e2e.conftest import TUNNEL_A, TUNNEL_B, TUNNEL_SVC
from e2e.harness import BurrowProcess, Launcher, wait_for
from e2e.peers import HttpPeer, UdpEchoPeer, http_request, udp_roundtrip

DIALECTS = ["relay", "tunnel"]
UP_TIMEOUT = 8.0
V6 = "::1"


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind((V6, 0))
    except OSError:
        return False
    return True


# Not a skip: a host without ::1 cannot show that IPv6 works, so the test must fail there.
assert _has_ipv6_loopback(), "these tests need the IPv6 loopback address ::1"


@pytest.fixture
def v6_web() -> Iterator[dict[str, HttpPeer]]:
    """Two HTTP peers listening on [::1] only."""
    peers = {name: HttpPeer(name, host=V6) for name in ("v6-a", "v6-b")}
    yield peers
    for peer in peers.values():
        peer.close()


def server_yaml(dialect: str, rules: list[tuple[str, str]], entrypoint: bool) -> dict[str, Any]:
    """A relay/tunnel server with its relay port (and entry point) on [::1], port 0."""
    md: dict[str, Any] = {"ingress": "ingress-0"}
    if entrypoint:
        md["entryPoint" if dialect == "relay" else "entrypoint"] = "[::1]:0"
    return {
        "services": [
            {
                "name": "service-0",
                "addr": "[::1]:0",
                "handler": {"type": dialect, "metadata": md},
                "listener": {"type": "tcp"},
            }
        ],
        "ingresses": [
            {"name": "ingress-0", "rules": [{"hostname": h, "endpoint": e} for h, e in rules]}
        ],
    }


def chain(dialect: str, server: BurrowProcess, tunnel: str) -> str:
    """The -F URL of a hop to the server's relay port (`relay://[::1]:port?tunnel.id=...`)."""
    relay = server.listener("relay")
    assert relay.host == V6, relay
    return f"{dialect}://{relay.address}?tunnel.id={tunnel}"


def start_client(burrow: Launcher, name: str, service: str, hop: str) -> BurrowProcess:
    """`burrow -L <service> -F <hop>`, up once its log says the tunnel is registered."""
    client = burrow.start_cli(name, ["-L", service, "-F", hop, "--workers", "1"])
    client.wait_log(r"tunnel\.up", timeout=UP_TIMEOUT)
    return client


def get(address: tuple[str, int], host: str, want: bytes) -> tuple[int, bytes]:
    """A GET that is retried until it answers `want` (bounded); returns the last answer."""

    def probe() -> tuple[int, bytes] | None:
        got = http_request(address, host, timeout=2.0)
        return got if got == (200, want) else None

    return wait_for(f"{want!r} via Host {host}", probe, UP_TIMEOUT)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_ipv6_entry_point_clients_and_visitor(
    burrow: Launcher, v6_web: dict[str, HttpPeer], dialect: str
) -> None:
    """Relay port and entry point on [::1]; Host `app.test` and `[::1]:port` route by rule."""
    server = burrow.start(
        "server",
        server_yaml(dialect, [("app.test", TUNNEL_A), ("::1", TUNNEL_B)], entrypoint=True),
        workers=2,
    )
    web_a, web_b = v6_web["v6-a"], v6_web["v6-b"]
    assert web_a.address.startswith("[::1]:")
    start_client(burrow, "client-a", f"rtcp://:0/{web_a.address}", chain(dialect, server, TUNNEL_A))
    start_client(burrow, "client-b", f"rtcp://:0/{web_b.address}", chain(dialect, server, TUNNEL_B))
    entry = server.listener("entrypoint")
    assert entry.host == V6 and entry.address == f"[::1]:{entry.port}"
    address = (entry.host, entry.port)

    assert get(address, "app.test", b"v6-a host=app.test") == (200, b"v6-a host=app.test")
    # The Host header of a browser that typed http://[::1]:port/: port stripped, rule "::1".
    literal = entry.address
    assert get(address, literal, f"v6-b host={literal}".encode())[0] == 200
    assert http_request(address, "[::1]") == (200, b"v6-b host=[::1]")  # no port: same rule
    # Fresh connections land on both workers; each routes by its own Host.
    for i in range(6):
        host = "app.test" if i % 2 else literal
        want = b"v6-a host=app.test" if i % 2 else f"v6-b host={literal}".encode()
        assert http_request(address, host) == (200, want)
    assert http_request(address, "[::2]:80")[0] == 502  # another literal: no rule

    # A TCP visitor on [::1] naming an IPv6 target, routed by the "::1" rule to tunnel B.
    visitor = burrow.start_cli(
        "visitor",
        ["-L", "tcp://[::1]:0/[::1]:80", "-F", chain(dialect, server, TUNNEL_B), "--workers", "1"],
    )
    item = visitor.listener("visitor")
    assert item.host == V6
    got = get((item.host, item.port), "anything.test", b"v6-b host=anything.test")
    assert got == (200, b"v6-b host=anything.test")


@pytest.mark.parametrize("dialect", DIALECTS)
def test_ipv6_udp_client_and_visitor(burrow: Launcher, dialect: str) -> None:
    """`rudp://:0/[::1]:port` publishes a UDP echo on ::1; `udp://[::1]:0/[::1]:53` reaches it."""
    echo = UdpEchoPeer(host=V6)
    try:
        server = burrow.start(
            "server", server_yaml(dialect, [("::1", TUNNEL_SVC)], entrypoint=False), workers=2
        )
        start_client(
            burrow, "client", f"rudp://:0/{echo.address}", chain(dialect, server, TUNNEL_SVC)
        )
        visitor = burrow.start_cli(
            "visitor",
            ["-L", "udp://[::1]:0/[::1]:53", "-F", chain(dialect, server, TUNNEL_SVC)]
            + ["--workers", "1"],
        )
        item = visitor.listener("visitor", udp=True)
        assert item.host == V6
        target = (item.host, item.port)
        first = wait_for(
            "a UDP echo through the visitor",
            lambda: udp_roundtrip(target, b"ping-v6", 1.0),
            UP_TIMEOUT,
        )
        assert first == b"ping-v6"
        for i in range(3):
            assert udp_roundtrip(target, f"dgram-{i}".encode(), 3.0) == f"dgram-{i}".encode()
    finally:
        echo.close()
