"""Entry-point routing against a 2-worker server (issue 16 item 10): hosts too long for any
Addr get a 502 (never a task traceback after a handoff), and an absolute-form request target
routes by its authority, not by the Host header (RFC 9112 §3.2.2).
"""

from __future__ import annotations

import socket

import pytest
from e2e.conftest import TUNNEL_A
from e2e.harness import (
    BurrowProcess,
    Launcher,
    forward_node,
    server_config,
)
from e2e.peers import HttpPeer, http_request, read_http_response
from e2e.topology import listener_address, start_with_client, wait_healthy

UP_TIMEOUT = 8.0
TRIES = 12  # connections spread over both workers: some are handed off
LONG_HOST = "a" * 63 + "." + "b" * 63 + "." + "c" * 63 + "." + "d" * 63 + ".example.com"


@pytest.fixture
def setup(burrow: Launcher, web: HttpPeer) -> tuple[BurrowProcess, tuple[str, int]]:
    """Server with 2 workers, a wildcard rule, and a client on TUNNEL_A serving web."""
    cfg = server_config([(".example.com", TUNNEL_A)])
    nodes = [forward_node("web", web.address)]
    server, _ = start_with_client(burrow, cfg, TUNNEL_A, nodes, workers=2, timeout=UP_TIMEOUT)
    addr = listener_address(server, "entrypoint")
    wait_healthy(addr, UP_TIMEOUT)
    return server, addr


def test_host_over_255_bytes_gets_502(setup) -> None:
    """Under a wildcard rule a 268-byte Host is refused with 502 on every worker, no traceback."""
    server, entry = setup
    assert len(LONG_HOST) > 255
    for _ in range(TRIES):
        assert http_request(entry, LONG_HOST, timeout=5.0)[0] == 502
    assert http_request(entry, "www.example.com")[0] == 200
    log = server.stderr()
    assert "Traceback" not in log and "exception" not in log.lower(), log[-2000:]


def test_absolute_uri_authority_wins_over_host(setup) -> None:
    """GET http://www.example.com/ with a Host naming no rule still reaches the tunnel."""
    _, entry = setup
    for _ in range(TRIES):
        with socket.create_connection(entry, timeout=5.0) as sock:
            sock.sendall(
                b"GET http://www.example.com/ HTTP/1.1\r\nHost: nobody.invalid\r\n"
                b"Connection: close\r\n\r\n"
            )
            status, _ = read_http_response(sock)
        assert status == 200
