"""Issue 16 hardening with real processes: rejection-log flood, login guessing.

Healthy traffic runs through the entry point during each attack; its success rate is printed
and must stay at or above 99 %.
"""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterator

import pytest
from e2e.attack import WEB_HOST, Healthy, server_auth, with_auth
from e2e.conftest import TUNNEL_A
from e2e.harness import (
    BurrowProcess,
    Launcher,
    client_config,
    client_service,
    forward_node,
    server_config,
)
from e2e.peers import HttpPeer
from e2e.topology import listener_address

from burrow.common.ids import TunnelId
from burrow.proto.relay import Cmd, RelayRequest
from burrow.proto.relay_features import TunnelFeature, UserAuthFeature

UP_TIMEOUT = 15.0
MIN_HEALTHY = 0.99
FLOOD = 2000
FLOOD_THREADS = 4
USER, PASSWORD = "tunnel-user", "right-password"


@pytest.fixture
def web() -> Iterator[HttpPeer]:
    peer = HttpPeer("web")
    yield peer
    peer.close()


def start(burrow: Launcher, web: HttpPeer, *, auth: bool) -> BurrowProcess:
    """A 1-worker server with a tunnel client attached (credentials when ``auth``)."""
    config = server_config([(WEB_HOST, TUNNEL_A)])
    if auth:
        server_auth(config, USER, PASSWORD)
    server = burrow.start("server", config)
    client = client_config(
        server.listener("relay").address,
        TUNNEL_A,
        [client_service("service-0", [forward_node("web", web.address)])],
    )
    if auth:
        with_auth(client, USER, PASSWORD)
    burrow.start("client", client)
    server.wait_log(r"tunnel\.up", timeout=UP_TIMEOUT)
    return server


def entry(server: BurrowProcess) -> tuple[str, int]:
    return listener_address(server, "entrypoint")


def relay(server: BurrowProcess) -> tuple[str, int]:
    return listener_address(server, "relay")


def _garbage(address: tuple[str, int], count: int, errors: list[str]) -> None:
    for _ in range(count):
        try:
            with socket.create_connection(address, timeout=5.0) as sock:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                sock.recv(16)  # wait for the server's close so the flood is real, not queued
        except OSError as exc:
            errors.append(repr(exc))


def test_rejection_flood_writes_bounded_log(burrow: Launcher, web: HttpPeer) -> None:
    """Item 9: 2,000 garbage connections: a few lines per reason, then one summary line."""
    server = start(burrow, web, auth=False)
    healthy = Healthy(entry(server))
    errors: list[str] = []
    try:
        healthy.wait_more(20)
        threads = [
            threading.Thread(target=_garbage, args=(relay(server), FLOOD // FLOOD_THREADS, errors))
            for _ in range(FLOOD_THREADS)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        summary = server.wait_log(r"log\.suppressed .*relay\.rejected", timeout=30.0)
        healthy.wait_more(20)
    finally:
        figure = healthy.stop()
    log = server.stderr()
    lines = [line for line in log.splitlines() if "relay.rejected" in line]
    logged = [line for line in lines if "log.suppressed" not in line]
    suppressed = sum(int(m) for m in re.findall(r"log\.suppressed .*? count=(\d+)", log))
    print(f"flood: {FLOOD} connections, {len(logged)} rejection lines, {suppressed} summarised")
    print(summary)
    assert "more like this in the last 10 s" in summary
    assert len(logged) <= 20, len(logged)
    assert len(logged) + suppressed >= FLOOD - len(errors) - 5
    assert not errors[:1], errors[:3]
    assert healthy.rate >= MIN_HEALTHY, figure


def _attempt(address: tuple[str, int], password: str, source: str) -> int:
    """One relay CONNECT with credentials from ``source``; returns the reply's status byte."""
    req = RelayRequest(
        Cmd.CONNECT,
        (UserAuthFeature(USER, password), TunnelFeature(TunnelId.parse(TUNNEL_A), 16)),
    )
    with socket.create_connection(address, timeout=10.0, source_address=(source, 0)) as sock:
        sock.sendall(req.encode())
        reply = b""
        while len(reply) < 2:
            chunk = sock.recv(64)
            if not chunk:
                break
            reply += chunk
    assert len(reply) >= 2, reply
    return reply[1]


def test_login_guessing_bans_the_source(burrow: Launcher, web: HttpPeer) -> None:
    """Item 11: the 11th attempt in a minute is refused even with the right password."""
    server = start(burrow, web, auth=True)
    addr = relay(server)
    # A right password reaches routing (no target host: status 6), a wrong one is status 2.
    assert _attempt(addr, PASSWORD, "127.0.0.1") == 6
    healthy = Healthy(entry(server))
    try:
        healthy.wait_more(20)
        for _ in range(10):
            assert _attempt(addr, "guess", "127.0.0.1") == 2
        server.wait_log(r"relay\.auth_ban source=127\.0\.0\.1", timeout=UP_TIMEOUT)
        assert _attempt(addr, PASSWORD, "127.0.0.1") == 2
        assert _attempt(addr, "guess", "127.0.0.1") == 2
        assert _attempt(addr, PASSWORD, "127.0.0.2") == 6
        healthy.wait_more(20)
    finally:
        figure = healthy.stop()
    assert PASSWORD not in server.stderr()
    assert healthy.rate >= MIN_HEALTHY, figure
