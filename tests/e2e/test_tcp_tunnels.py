"""End-to-end TCP tunnels with real burrow processes (issue 3/4 acceptance), both dialects.

Shapes follow the seed configs (01-08), moved to 127.0.0.1: server listeners on port 0, targets
are in-test peers, chains point at the relay port from the server's READY line.
"""

from __future__ import annotations

import socket
from collections import Counter

import pytest
import trustme
from e2e.conftest import TUNNEL_A, TUNNEL_B, TUNNEL_SVC
from e2e.harness import (
    BurrowProcess,
    Launcher,
    client_config,
    client_service,
    forward_node,
    server_config,
    visitor_config,
    visitor_service,
    wait_for,
)
from e2e.peers import (
    SSH_BANNER,
    EchoPeer,
    HttpPeer,
    RedisPeer,
    SshBannerPeer,
    TlsPeer,
    exchange,
    http_request,
    recv_exactly,
    tls_request,
)
from e2e.topology import listener_address as addr

DIALECTS = ["relay", "tunnel"]
UP_TIMEOUT = 8.0


def wait_http(entry: tuple[str, int], host: str, want: str, timeout: float = UP_TIMEOUT) -> bytes:
    """Retry a GET with this Host until it answers 200 with `want` in the body (bounded)."""

    def probe() -> bytes | None:
        status, body = http_request(entry, host, timeout=2.0)
        return body if status == 200 and want.encode() in body else None

    return wait_for(f"200 from {want} via Host {host}", probe, timeout)


def start_server(
    burrow: Launcher, rules: list[tuple[str, str]], dialect: str, workers: int = 2
) -> BurrowProcess:
    """A server with an entry point; two workers so cross-worker handoff is exercised."""
    return burrow.start("server", server_config(rules, dialect=dialect), workers=workers)


def start_client(
    burrow: Launcher, name: str, server: BurrowProcess, tunnel: str, services: list, dialect: str
) -> BurrowProcess:
    """A tunnel client (no listeners) whose tunnel is up, per its own log."""
    relay = server.listener("relay").address
    bp = burrow.start(name, client_config(relay, tunnel, services, dialect=dialect))
    bp.wait_log(r"tunnel\.up", timeout=UP_TIMEOUT)
    return bp


@pytest.mark.parametrize("dialect", DIALECTS)
def test_public_web_by_host(
    burrow: Launcher, http_peers: dict[str, HttpPeer], dialect: str
) -> None:
    """Seed 01/02: the entry point routes by Host; unknown -> 502, no client -> 503."""
    server = start_server(
        burrow,
        [(".example.com", TUNNEL_A), ("example.org", TUNNEL_B), ("idle.net", TUNNEL_SVC)],
        dialect,
    )
    web_a, web_b = http_peers["web-a"], http_peers["web-b"]
    start_client(
        burrow,
        "client-a",
        server,
        TUNNEL_A,
        [client_service("service-0", [forward_node("target-0", web_a.address)])],
        dialect,
    )
    start_client(
        burrow,
        "client-b",
        server,
        TUNNEL_B,
        [client_service("service-0", [forward_node("target-0", web_b.address)])],
        dialect,
    )
    entry = addr(server, "entrypoint")

    assert wait_http(entry, "www.example.com", "web-a") == b"web-a host=www.example.com"
    assert wait_http(entry, "example.org", "web-b") == b"web-b host=example.org"
    # Several fresh connections: both workers accept some, all must route the same way.
    for i in range(8):
        status, body = http_request(entry, f"h{i}.example.com")
        assert (status, body) == (200, f"web-a host=h{i}.example.com".encode())
    assert http_request(entry, "unknown.test")[0] == 502
    assert http_request(entry, "idle.net")[0] == 503


@pytest.mark.parametrize("dialect", DIALECTS)
def test_public_tls_by_sni(burrow: Launcher, ca: trustme.CA, dialect: str) -> None:
    """TLS passthrough: routed by SNI, the certificate seen by the visitor is the peer's own."""
    tls_peer = TlsPeer("tls-a", ca, ["a.example.com", "b.example.com"])
    try:
        server = start_server(burrow, [(".example.com", TUNNEL_A)], dialect)
        start_client(
            burrow,
            "client",
            server,
            TUNNEL_A,
            [client_service("service-0", [forward_node("target-0", tls_peer.address)])],
            dialect,
        )
        entry = addr(server, "entrypoint")
        for name in ("a.example.com", "b.example.com"):

            def probe(name: str = name) -> bytes | None:
                status, body = tls_request(entry, ca, name, timeout=2.0)
                return body if status == 200 else None

            body = wait_for(f"TLS via SNI {name}", probe, UP_TIMEOUT)
            assert body == f"tls-a host={name} sni={name}".encode()
    finally:
        tls_peer.close()


@pytest.mark.parametrize("dialect", DIALECTS)
def test_client_side_routing_with_fallback(
    burrow: Launcher, http_peers: dict[str, HttpPeer], dialect: str
) -> None:
    """Seed 03: the client sniffs Host and picks the node whose host matches, else the fallback."""
    server = start_server(burrow, [("example.com", TUNNEL_A), (".example.com", TUNNEL_A)], dialect)
    nodes = [
        forward_node("example-com", http_peers["web-a"].address, "example.com"),
        forward_node("sub-example-com", http_peers["web-b"].address, "sub.example.com"),
        forward_node("fallback", http_peers["fallback"].address),
    ]
    start_client(
        burrow,
        "client",
        server,
        TUNNEL_A,
        [client_service("service-0", nodes, sniffing=True)],
        dialect,
    )
    entry = addr(server, "entrypoint")
    assert wait_http(entry, "example.com", "web-a") == b"web-a host=example.com"
    assert http_request(entry, "sub.example.com") == (200, b"web-b host=sub.example.com")
    assert http_request(entry, "other.example.com") == (200, b"fallback host=other.example.com")


@pytest.mark.parametrize("dialect", DIALECTS)
def test_private_tunnel(burrow: Launcher, http_peers: dict[str, HttpPeer], dialect: str) -> None:
    """Seed 04/05/06: entry point refuses a private rule (502); visitors get through."""
    server = start_server(
        burrow, [("srv-2.local", "$" + TUNNEL_B), ("srv-3.local", TUNNEL_B)], dialect
    )
    web = http_peers["web-a"]
    start_client(
        burrow,
        "client",
        server,
        TUNNEL_B,
        [client_service("service-0", [forward_node("srv-2.local", web.address)])],
        dialect,
    )
    relay = server.listener("relay").address
    visitor = burrow.start(
        "visitor",
        visitor_config(
            relay,
            TUNNEL_B,
            [
                visitor_service("by-target", target="srv-2.local:80"),
                visitor_service("by-sniffing", sniffing=True),
            ],
            dialect=dialect,
        ),
    )
    entry = addr(server, "entrypoint")
    # Public under srv-3.local: proves the client is up before the refusal is checked.
    assert wait_http(entry, "srv-3.local", "web-a") == b"web-a host=srv-3.local"
    assert http_request(entry, "srv-2.local")[0] == 502

    by_target = addr(visitor, "visitor", service="by-target")
    assert wait_http(by_target, "srv-2.local", "web-a") == b"web-a host=srv-2.local"
    by_sniff = addr(visitor, "visitor", service="by-sniffing")
    assert wait_http(by_sniff, "srv-2.local", "web-a") == b"web-a host=srv-2.local"


@pytest.mark.parametrize("dialect", DIALECTS)
def test_tcp_services_via_visitors(
    burrow: Launcher,
    echo_peer: EchoPeer,
    redis_peer: RedisPeer,
    ssh_peer: SshBannerPeer,
    dialect: str,
) -> None:
    """Seed 07/08: echo, Redis PING and an SSH banner through visitors picked by target host."""
    server = start_server(
        burrow,
        [
            ("ssh.srv-2.local", TUNNEL_SVC),
            ("redis.srv-3.local", TUNNEL_SVC),
            ("echo.srv-2.local", TUNNEL_SVC),
        ],
        dialect,
    )
    nodes = [
        forward_node("ssh", ssh_peer.address, "ssh.srv-2.local"),
        forward_node("redis", redis_peer.address, "redis.srv-3.local"),
        forward_node("echo", echo_peer.address, "echo.srv-2.local"),
    ]
    start_client(
        burrow, "client", server, TUNNEL_SVC, [client_service("service-0", nodes)], dialect
    )
    relay = server.listener("relay").address
    visitor = burrow.start(
        "visitor",
        visitor_config(
            relay,
            TUNNEL_SVC,
            [
                visitor_service("ssh", target="ssh.srv-2.local:0"),
                visitor_service("redis", target="redis.srv-3.local:0"),
                visitor_service("echo", target="echo.srv-2.local:0"),
            ],
            dialect=dialect,
        ),
    )

    payload = bytes(range(256)) * 64
    echo = addr(visitor, "visitor", service="echo")
    assert (
        wait_for("echo", lambda: exchange(echo, payload, len(payload), timeout=2.0), UP_TIMEOUT)
        == payload
    )

    redis = addr(visitor, "visitor", service="redis")
    assert exchange(redis, b"*1\r\n$4\r\nPING\r\n", 7) == b"+PONG\r\n"
    assert exchange(redis, b"PING\r\n", 7) == b"+PONG\r\n"

    # Like an OpenSSH client: send our banner and read the server's (both sides speak at once).
    ssh = addr(visitor, "visitor", service="ssh")
    with socket.create_connection(ssh, timeout=5.0) as sock:
        sock.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")
        assert recv_exactly(sock, len(SSH_BANNER)) == SSH_BANNER
        assert recv_exactly(sock, len(b"SSH-2.0-OpenSSH_9.6\r\n")) == b"SSH-2.0-OpenSSH_9.6\r\n"


def test_server_speaks_first_with_nodelay(burrow: Launcher, ssh_peer: SshBannerPeer) -> None:
    """Relay dialect, nodelay=true: CONNECT goes out at once, so a silent client gets the banner."""
    server = start_server(burrow, [("ssh.srv-2.local", TUNNEL_SVC)], "relay", workers=1)
    start_client(
        burrow,
        "client",
        server,
        TUNNEL_SVC,
        [client_service("service-0", [forward_node("ssh", ssh_peer.address)])],
        "relay",
    )
    relay = server.listener("relay").address
    visitor = burrow.start(
        "visitor",
        visitor_config(
            relay,
            TUNNEL_SVC,
            [
                visitor_service("ssh", target="ssh.srv-2.local:0", nodelay=True),
            ],
        ),
    )
    ssh = addr(visitor, "visitor")

    def probe() -> bytes:
        with socket.create_connection(ssh, timeout=2.0) as sock:
            return recv_exactly(sock, len(SSH_BANNER))

    assert wait_for("SSH banner", probe, UP_TIMEOUT) == SSH_BANNER


@pytest.mark.parametrize("dialect", DIALECTS)
def test_ha_two_clients_one_tunnel(
    burrow: Launcher, http_peers: dict[str, HttpPeer], dialect: str
) -> None:
    """Two clients on one tunnel ID share the load; killing one leaves the other serving."""
    server = start_server(burrow, [(".example.com", TUNNEL_A)], dialect)
    one = start_client(
        burrow,
        "client-1",
        server,
        TUNNEL_A,
        [client_service("s", [forward_node("t", http_peers["web-a"].address)])],
        dialect,
    )
    start_client(
        burrow,
        "client-2",
        server,
        TUNNEL_A,
        [client_service("s", [forward_node("t", http_peers["web-b"].address)])],
        dialect,
    )
    entry = addr(server, "entrypoint")

    def both_seen() -> Counter[str] | None:
        seen: Counter[str] = Counter()
        for i in range(12):
            status, body = http_request(entry, f"ha{i}.example.com", timeout=2.0)
            assert status == 200
            seen[body.split()[0].decode()] += 1
        return seen if len(seen) == 2 else None

    seen = wait_for("requests spread over both clients", both_seen, UP_TIMEOUT)
    assert set(seen) == {"web-a", "web-b"}

    one.kill()

    # The server notices the dead session (EOF on its socket); from then on every request succeeds.
    def all_b() -> bool | None:
        bodies = [http_request(entry, f"after{i}.example.com", timeout=2.0) for i in range(6)]
        return True if all(b[0] == 200 and b[1].startswith(b"web-b ") for b in bodies) else None

    wait_for("only client-2 answering", all_b, UP_TIMEOUT)
    for i in range(10):
        assert http_request(entry, f"x{i}.example.com") == (
            200,
            f"web-b host=x{i}.example.com".encode(),
        )
