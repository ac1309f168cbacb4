"""Status lines a user can act on (issue 11 item 6), with real processes on 127.0.0.1.

A tunnel client says `tunnel.up` (short tunnel ID, connector ID) once the server accepted its
BIND and `tunnel.down` with the reason; an unreachable server is a warning naming the address.
The entry point's 502/503 replies carry a text body (which host, why) and one info line each,
rate-limited per reason. The server warns once when a tunnel no ingress rule names registers.
"""

from __future__ import annotations

import os
import re
import signal
import socket

from e2e.attack import server_auth, with_auth
from e2e.conftest import TUNNEL_A, TUNNEL_B, TUNNEL_IPERF, TUNNEL_SVC
from e2e.harness import (
    BurrowProcess,
    Launcher,
    client_config,
    client_service,
    forward_node,
    server_config,
)
from e2e.peers import HttpPeer, http_request

UP = 10.0
SUMMARY_WAIT = 20.0  # the limiter's window is 10 s; its summary line comes when it closes
FLOOD = 30


def start_client(
    burrow: Launcher, name: str, server: BurrowProcess | str, tunnel: str, web: HttpPeer
) -> BurrowProcess:
    address = server if isinstance(server, str) else server.listener("relay").address
    services = [client_service("s", [forward_node("web", web.address)])]
    return burrow.start(name, client_config(address, tunnel, services))


def lines(bp: BurrowProcess, pattern: str) -> list[str]:
    rx = re.compile(pattern)
    return [line for line in bp.stderr().splitlines() if rx.search(line)]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_client_says_up_with_ids_then_down_with_the_reason(burrow: Launcher, web: HttpPeer) -> None:
    server = burrow.start("server", server_config([(".example.com", TUNNEL_A)]))
    client = start_client(burrow, "client", server, TUNNEL_A, web)
    up = client.wait_log(r"INFO .*tunnel\.up ", timeout=UP)
    relay = server.listener("relay").address
    m = re.search(r"tunnel=(\S+) connector=([0-9a-f-]{36}) server=(\S+)", up)
    assert m is not None, up
    assert m[1] == TUNNEL_A[:8] and m[3] == relay
    # The server logs the same registration, under the same connector ID.
    assert server.wait_log(rf"tunnel\.up tunnel={TUNNEL_A[:8]} connector={m[2]}", timeout=UP)
    assert TUNNEL_A not in client.stderr() and TUNNEL_A not in server.stderr()

    server.kill()
    down = client.wait_log(r"tunnel\.down ", timeout=UP)
    assert " WARN" in down and f"server={relay}" in down, down
    assert re.search(r'reason="(server closed the connection|connection lost[^"]*)"', down), down
    failed = client.wait_log(r"tunnel\.dial_failed ", timeout=UP)
    assert " WARN" in failed and f"server={relay}" in failed
    assert 'reason="connection refused' in failed and "retry_in=" in failed


def test_unreachable_server_is_a_warning_with_the_address(burrow: Launcher, web: HttpPeer) -> None:
    address = f"127.0.0.1:{closed_port()}"
    client = start_client(burrow, "client", address, TUNNEL_A, web)
    # READY means "listening" (README, Status lines); the warning says the tunnel is not up.
    line = client.wait_log(r"WARN.* tunnel\.dial_failed ", timeout=UP)
    assert f"server={address}" in line and 'reason="connection refused' in line
    assert "attempt=1 " in line and "retry_in=" in line
    assert not lines(client, r"tunnel\.up ")


def test_refusals_carry_a_body_and_an_info_line(burrow: Launcher) -> None:
    rules = [
        (".example.com", TUNNEL_A),
        ("nobody.example.org", TUNNEL_B),  # no client ever connects for it
        ("priv.local", "$" + TUNNEL_SVC),
    ]
    server = burrow.start("server", server_config(rules))
    entry = server.listener("entrypoint").host, server.listener("entrypoint").port

    status, body = http_request(entry, "unknown.invalid")
    assert (status, body) == (
        502,
        b"502 Bad Gateway\nNo ingress rule names the host unknown.invalid.\n",
    )
    line = server.wait_log(r"entrypoint\.refused reason=\"no ingress rule\"")
    assert " INFO " in line and "host=unknown.invalid" in line

    status, body = http_request(entry, "priv.local")
    assert status == 502 and b"priv.local is served by a private tunnel" in body
    assert b"names its tunnel ID" in body and TUNNEL_SVC[:8].encode() not in body
    line = server.wait_log(r"entrypoint\.refused reason=\"private tunnel\"")
    assert (
        " INFO " in line
        and "host=priv.local" in line
        and f"tunnel={TUNNEL_SVC[:8]}" in line.split()
    )

    status, body = http_request(entry, "nobody.example.org:8080")
    assert status == 503
    assert body == (
        b"503 Service Unavailable\n"
        b"No tunnel client is connected for the host nobody.example.org; try again later.\n"
    )
    line = server.wait_log(r"entrypoint\.unavailable reason=\"no tunnel client connected\"")
    assert " INFO " in line and f"tunnel={TUNNEL_B[:8]}" in line.split()
    log = server.stderr()
    assert TUNNEL_B not in log and TUNNEL_SVC not in log

    # A flood of one reason: a few lines per 10 s window, the rest counted in one summary.
    for i in range(FLOOD):
        assert http_request(entry, f"flood-{i}.invalid")[0] == 502
    summary = server.wait_log(
        r'log\.suppressed like="entrypoint\.refused no ingress rule"', timeout=SUMMARY_WAIT
    )
    logged = len(lines(server, r"entrypoint\.refused reason=\"no ingress rule\""))
    counts = [
        int(m[1])
        for line in lines(server, r"log\.suppressed like=\"entrypoint\.refused no ingress")
        if (m := re.search(r" count=(\d+)", line))
    ]
    assert logged <= 10, summary  # 5 per window; at most two windows for a fast flood
    assert counts and logged + sum(counts) <= FLOOD + 1 and sum(counts) >= FLOOD + 1 - 10


def test_unnamed_tunnel_warns_once_and_after_a_reload_only_if_still_unnamed(
    burrow: Launcher, web: HttpPeer
) -> None:
    rules = [(".example.com", TUNNEL_A), ("priv.local", "$" + TUNNEL_SVC)]
    server = burrow.start("server", server_config(rules))
    unnamed = (
        r"WARN.* tunnel\.unnamed reason=\"no ingress rule names this tunnel\" "
        rf"tunnel={TUNNEL_B[:8]} "
    )

    first = start_client(burrow, "client-1", server, TUNNEL_B, web)
    second = start_client(burrow, "client-2", server, TUNNEL_B, web)
    start_client(burrow, "client-private", server, TUNNEL_SVC, web)  # a $ rule names it
    server.wait_log(r"tunnel\.up ", timeout=UP, count=3)
    first.stop()
    start_client(burrow, "client-1-again", server, TUNNEL_B, web)  # a reconnect
    server.wait_log(r"tunnel\.up ", timeout=UP, count=4)
    assert len(lines(server, unnamed)) == 1
    assert not lines(server, rf"tunnel\.unnamed .*tunnel={TUNNEL_SVC[:8]}")
    assert TUNNEL_B not in server.stderr()

    # SIGHUP with a rule for TUNNEL_B: its next registration is quiet, a new unnamed ID is not.
    burrow.write_yaml("server", server_config([*rules, ("b.example.org", TUNNEL_B)]))
    os.kill(server.proc.pid, signal.SIGHUP)
    server.wait_log(r"reload\.done", timeout=UP)
    second.stop()
    start_client(burrow, "client-2-again", server, TUNNEL_B, web)
    start_client(burrow, "client-new", server, TUNNEL_IPERF, web)
    server.wait_log(r"tunnel\.up ", timeout=UP, count=6)
    server.wait_log(rf"tunnel\.unnamed .*tunnel={TUNNEL_IPERF[:8]} ", timeout=UP)
    assert len(lines(server, unnamed)) == 1


def test_entry_point_without_rules_says_so_once(burrow: Launcher) -> None:
    server = burrow.start("server", server_config([]), workers=2)
    line = server.wait_log(r"WARN.* ingress\.empty ", timeout=UP)
    assert "entrypoints=127.0.0.1:" in line and "fix=" in line
    assert len(lines(server, r"ingress\.empty")) == 1


def test_client_that_cannot_reach_its_target_answers_502(burrow: Launcher) -> None:
    server = burrow.start("server", server_config([(".example.com", TUNNEL_A)]))
    services = [client_service("s", [forward_node("down", f"127.0.0.1:{closed_port()}")])]
    client = burrow.start(
        "client", client_config(server.listener("relay").address, TUNNEL_A, services)
    )
    client.wait_log(r"tunnel\.up ", timeout=UP)
    entry = server.listener("entrypoint").host, server.listener("entrypoint").port
    status, body = http_request(entry, "www.example.com")
    assert status == 502
    assert body == (
        b"502 Bad Gateway\n"
        b"The tunnel client for the host www.example.com could not reach its target.\n"
    )
    line = client.wait_log(r"stream\.dial_failed ", timeout=UP)
    assert " INFO " in line and 'reason="target refused the connection' in line
    assert "node=down" in line and "http_502=True" in line


def test_auth_refusal_is_a_warning_and_stopping_is_an_info_down(
    burrow: Launcher, web: HttpPeer
) -> None:
    server = burrow.start(
        "server", server_auth(server_config([(".example.com", TUNNEL_A)]), "u", "right")
    )
    services = [client_service("s", [forward_node("web", web.address)])]
    relay = server.listener("relay").address
    wrong = burrow.start("wrong", with_auth(client_config(relay, TUNNEL_A, services), "u", "bad"))
    line = wrong.wait_log(r"tunnel\.refused ", timeout=UP)
    assert " WARN" in line and f"server={relay}" in line and 'status="2 Unauthorized"' in line
    assert 'reason="auth refused: check the connector' in line
    wrong.stop()

    good = burrow.start("good", with_auth(client_config(relay, TUNNEL_A, services), "u", "right"))
    good.wait_log(r"tunnel\.up ", timeout=UP)
    good.stop()  # SIGTERM: drains, then says why the tunnel went down
    down = lines(good, r"tunnel\.down ")
    assert len(down) == 1 and " INFO " in down[0] and 'reason="stopping' in down[0], down


def test_frozen_server_is_a_keepalive_timeout_down(burrow: Launcher, web: HttpPeer) -> None:
    server = burrow.start("server", server_config([(".example.com", TUNNEL_A)]))
    services = [client_service("s", [forward_node("web", web.address)])]
    cfg = client_config(server.listener("relay").address, TUNNEL_A, services)
    md = cfg["chains"][0]["hops"][0]["nodes"][0]["connector"]["metadata"]
    md.update({"mux.keepaliveInterval": "200ms", "mux.keepaliveTimeout": "1s"})
    client = burrow.start("client", cfg)
    client.wait_log(r"tunnel\.up ", timeout=UP)
    os.killpg(server.proc.pid, signal.SIGSTOP)
    try:
        down = client.wait_log(r"tunnel\.down ", timeout=UP)
    finally:
        os.killpg(server.proc.pid, signal.SIGCONT)
    assert " WARN" in down and 'reason="keepalive timeout: no frame from the peer"' in down
