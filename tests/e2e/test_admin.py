"""End-to-end admin endpoint (issue 13): /metrics moves by what was sent, survives a worker
SIGKILL, the JSON API and `burrow status --json` show the running tunnels, tokens are enforced.

Topology: a 2-worker server with the admin endpoint on 127.0.0.1:0 and two 1-worker tunnel
clients (tunnels A and B), each publishing an HTTP peer that reads a POST body and answers with
a body of the size the request asks for.
"""

from __future__ import annotations

import http.client
import json
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e.conftest import TUNNEL_A, TUNNEL_B
from e2e.harness import (
    BurrowProcess,
    Launcher,
    client_config,
    client_service,
    forward_node,
    server_config,
    subprocess_env,
    wait_for,
)
from e2e.peers import TcpPeer, header_value, read_http_head, read_http_response
from e2e.topology import listener_address as addr

pytestmark = pytest.mark.e2e

UP_TIMEOUT = 15.0
STATS_TIMEOUT = 10.0
HOST_A = "a.example.com"
HOST_B = "b.example.com"
UPLOAD = 3 * 1024 * 1024
DOWNLOAD = 2 * 1024 * 1024
TOKEN = "0123456789abcdef0123456789abcdef"
# smux framing (8 bytes per frame of up to 32 KiB), stream headers, HTTP heads, keepalives.
SLACK = 0.03


def _bulk(conn: socket.socket) -> None:
    """POST with a body of any size; answers `X-Want` bytes of body."""
    while True:
        head = read_http_head(conn)
        if not head:
            return
        # read_http_head may return body bytes read past the head.
        length = int(header_value(head, "content-length") or 0)
        length -= len(head) - head.index(b"\r\n\r\n") - 4
        while length > 0:
            got = conn.recv(min(length, 1 << 16))
            if not got:
                return
            length -= len(got)
        want = int(header_value(head, "x-want") or 0)
        conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {want}\r\n\r\n".encode())
        conn.sendall(b"d" * want)


@pytest.fixture
def bulk_peer() -> Iterator[TcpPeer]:
    """The HTTP peer behind both tunnels."""
    peer = TcpPeer(_bulk)
    yield peer
    peer.close()


def post(entry: tuple[str, int], host: str, body: int, want: int, opened: Any = None) -> int:
    """One POST through the entry point; the status (the response body is read in full).

    ``opened``: called after the head is sent, returns once the stream is open; the body then
    goes through the pipe. Sent at once, a large body can land in the worker's first read, and
    a read past the handoff record's prefix limit (69632 bytes) cannot move to another worker.
    """
    with socket.create_connection(entry, timeout=10.0) as sock:
        head = (
            f"POST / HTTP/1.1\r\nHost: {host}\r\nContent-Length: {body}\r\nX-Want: {want}\r\n\r\n"
        )
        sock.sendall(head.encode())
        if opened is not None:
            opened()
        sock.sendall(b"u" * body)
        status, data = read_http_response(sock)
        assert len(data) == want
        return status


def admin_address(bp: BurrowProcess) -> str:
    """The admin endpoint's host:port from its `admin.listening` line."""
    line = bp.wait_log(r"admin\.listening address=\S+", timeout=UP_TIMEOUT)
    return re.search(r"address=(\S+)", line).group(1)  # type: ignore[union-attr]


def get(admin: str, path: str, token: str | None = None) -> tuple[int, bytes]:
    """GET from the admin endpoint: (status, body)."""
    host, _, port = admin.rpartition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5.0)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def api(admin: str, path: str, token: str | None = None) -> Any:
    status, body = get(admin, path, token)
    assert status == 200, (path, status, body)
    return json.loads(body)


def metric(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        series, _, value = line.rpartition(" ")
        if all(f'{k}="{v}"' in series for k, v in labels.items()):
            total += float(value)
    return total


def scrape(admin: str) -> str:
    status, body = get(admin, "/metrics")
    assert status == 200
    return body.decode()


def start_system(burrow: Launcher, peer: TcpPeer) -> tuple[BurrowProcess, str]:
    """The 2-worker server with the admin endpoint, and two tunnel clients registered."""
    config = server_config([(HOST_A, TUNNEL_A), (HOST_B, TUNNEL_B)])
    config["burrow"] = {"admin": "127.0.0.1:0"}
    server = burrow.start("server", config, workers=2)
    relay = server.listener("relay").address
    for name, tunnel in (("client-a", TUNNEL_A), ("client-b", TUNNEL_B)):
        nodes = [forward_node("web", peer.address)]
        client = burrow.start(name, client_config(relay, tunnel, [client_service(name, nodes)]))
        client.wait_log(r"tunnel\.up", timeout=UP_TIMEOUT)
    server.wait_log(r"tunnel\.up", timeout=UP_TIMEOUT, count=2)
    admin = admin_address(server)
    # Workers report with their heartbeat: wait for the report that has both connectors.
    wait_for(
        "both tunnels in /api/summary",
        lambda: api(admin, "/api/summary")["tunnels_up"] == 2 or None,
        STATS_TIMEOUT,
    )
    return server, admin


def tunnel_bytes(admin: str, tunnel: str) -> tuple[float, float]:
    """(sent, received) bytes of the server's end of ``tunnel`` (8-char label)."""
    text = scrape(admin)
    labels = {"role": "server", "tunnel": tunnel[:8]}
    return (
        metric(text, "burrow_tunnel_sent_bytes_total", **labels),
        metric(text, "burrow_tunnel_received_bytes_total", **labels),
    )


def wait_bytes(admin: str, tunnel: str, sent: float, received: float) -> tuple[float, float]:
    """Wait until the counters reach at least (sent, received); returns what they show."""

    def probe() -> tuple[float, float] | None:
        now = tunnel_bytes(admin, tunnel)
        return now if now[0] >= sent and now[1] >= received else None

    return wait_for(f"tunnel {tunnel[:8]} counters", probe, STATS_TIMEOUT)


def stream_opened(admin: str, tunnel: str) -> Any:
    """A callable waiting until ``tunnel`` has one more stream than now (per /api/tunnels)."""

    def total() -> int:
        rows = api(admin, "/api/tunnels")["tunnels"]
        return sum(t["streams_total"] for t in rows if t["tunnel_id"] == tunnel)

    before = total()
    return lambda: wait_for("stream open", lambda: total() > before or None, STATS_TIMEOUT)


def worker_pid_of_tunnel(admin: str, tunnel: str) -> tuple[int, int]:
    """(worker index, pid) holding the server end of ``tunnel``."""
    tunnels = api(admin, "/api/tunnels")["tunnels"]
    (row,) = [t for t in tunnels if t["tunnel_id"] == tunnel and t["up"]]
    index = row["connectors"][0]["worker"]
    (w,) = [w for w in api(admin, "/api/workers")["workers"] if w["index"] == index]
    return index, w["pid"]


def test_metrics_move_by_what_was_sent_and_survive_a_worker_kill(
    burrow: Launcher, bulk_peer: TcpPeer
) -> None:
    server, admin = start_system(burrow, bulk_peer)
    entry = addr(server, "entrypoint")
    sent0, recv0 = wait_bytes(admin, TUNNEL_A, 0, 0)
    routed0 = metric(scrape(admin), "burrow_entry_requests_total", outcome="routed")

    assert post(entry, HOST_A, UPLOAD, DOWNLOAD, stream_opened(admin, TUNNEL_A)) == 200
    sent1, recv1 = wait_bytes(admin, TUNNEL_A, sent0 + UPLOAD, recv0 + DOWNLOAD)
    # Give a late report no chance to hide an overcount: read once more after the wait.
    assert UPLOAD <= sent1 - sent0 <= UPLOAD * (1 + SLACK)
    assert DOWNLOAD <= recv1 - recv0 <= DOWNLOAD * (1 + SLACK)
    text = scrape(admin)
    assert metric(text, "burrow_entry_requests_total", outcome="routed") == routed0 + 1
    assert metric(text, "burrow_tunnels_up") == 2
    assert metric(text, "burrow_connectors", role="server", dialect="relay", network="tcp") == 2
    # The client ends count too, on their own (1-worker) admin-less processes: not here.
    assert metric(text, "burrow_entry_requests_total", outcome="503") == 0

    # SIGKILL the worker holding tunnel A: its counts are kept, the replacement starts at zero.
    index, pid = worker_pid_of_tunnel(admin, TUNNEL_A)
    before = scrape(admin)
    subprocess.run(["kill", "-KILL", str(pid)], check=True, timeout=5)
    server.wait_log(rf"worker\.ready worker={index} pid=(?!{pid}\b)\d+", timeout=UP_TIMEOUT)
    # Client A reconnected (B may have been on that worker too: wait for A by name).
    server.wait_log(rf"tunnel\.up tunnel={TUNNEL_A[:8]}", timeout=UP_TIMEOUT, count=2)
    after = scrape(admin)
    for name in ("burrow_tunnel_sent_bytes_total", "burrow_tunnel_received_bytes_total",
                 "burrow_entry_requests_total", "burrow_streams_total"):  # fmt: skip
        assert metric(after, name) >= metric(before, name), name
    assert metric(after, "burrow_worker_restarts_total") == 1

    # Traffic after the restart adds on top of the kept totals.
    sent2, recv2 = tunnel_bytes(admin, TUNNEL_A)
    assert post(entry, HOST_A, UPLOAD, DOWNLOAD, stream_opened(admin, TUNNEL_A)) == 200
    sent3, recv3 = wait_bytes(admin, TUNNEL_A, sent2 + UPLOAD, recv2 + DOWNLOAD)
    assert sent3 - sent2 <= UPLOAD * (1 + SLACK)
    assert recv3 - recv2 <= DOWNLOAD * (1 + SLACK)
    assert sent3 - sent0 >= 2 * UPLOAD


def test_api_and_status_show_the_running_tunnels(burrow: Launcher, bulk_peer: TcpPeer) -> None:
    server, admin = start_system(burrow, bulk_peer)
    ups = re.findall(r"tunnel\.up tunnel=(\w+) connector=(\S+)", server.stderr())
    logged = {(t, c) for t, c in ups}
    assert len(logged) == 2

    def shown() -> set[tuple[str, str]] | None:
        rows = api(admin, "/api/tunnels")["tunnels"]
        got = {(t["tunnel"], c["connector_id"]) for t in rows for c in t["connectors"]}
        return got if got == logged else None

    wait_for("both tunnels in /api/tunnels", shown, STATS_TIMEOUT)
    tunnels = {t["tunnel_id"] for t in api(admin, "/api/tunnels")["tunnels"]}
    assert tunnels == {TUNNEL_A, TUNNEL_B}
    summary = api(admin, "/api/summary")
    assert (summary["ready"], summary["workers"], summary["tunnels_up"]) == (True, 2, 2)
    assert {w["index"] for w in api(admin, "/api/workers")["workers"]} == {0, 1}
    assert get(admin, "/healthz")[0] == 200
    assert get(admin, "/readyz")[0] == 200
    config = api(admin, "/api/config")
    assert config["services"][0]["name"] == "service-0"

    out = subprocess.run(
        [sys.executable, "-m", "burrow.supervisor", "status", "--admin", admin, "--json"],
        capture_output=True, env=subprocess_env(), timeout=30, check=True,
    )  # fmt: skip
    status = json.loads(out.stdout)
    got = {(t["tunnel"], c["connector_id"]) for t in status["tunnels"] for c in t["connectors"]}
    assert got == logged
    screen = subprocess.run(
        [sys.executable, "-m", "burrow.supervisor", "status", "--admin", admin,
         "--interval", "0.2"],
        capture_output=True, env=subprocess_env(), timeout=30, check=True, text=True,
    ).stdout  # fmt: skip
    for tunnel, connector in logged:
        assert tunnel in screen and connector[:8] in screen


def test_non_loopback_admin_without_token_is_refused(burrow: Launcher) -> None:
    config = server_config([(HOST_A, TUNNEL_A)])
    config["burrow"] = {"admin": "0.0.0.0:0"}
    path = burrow.write_yaml("open", config)
    proc = subprocess.run(
        [sys.executable, "-m", "burrow.supervisor", "-C", str(path)],
        capture_output=True, text=True, env=subprocess_env(), timeout=30, check=False,
    )  # fmt: skip
    assert proc.returncode == 78, proc.stderr
    assert f"{path}" in proc.stderr and "burrow.admin" in proc.stderr
    assert "admin_token" in proc.stderr  # the fix names the key to set


def test_admin_port_cannot_be_the_entry_point(burrow: Launcher) -> None:
    config = server_config([(HOST_A, TUNNEL_A)])
    config["services"][0]["handler"]["metadata"]["entryPoint"] = "127.0.0.1:18080"
    config["burrow"] = {"admin": "127.0.0.1:18080"}
    path = burrow.write_yaml("clash", config)
    proc = subprocess.run(
        [sys.executable, "-m", "burrow.supervisor", "check", "-C", str(path)],
        capture_output=True, text=True, env=subprocess_env(), timeout=30, check=False,
    )  # fmt: skip
    assert proc.returncode == 78
    assert "burrow.admin" in proc.stderr and "entrypoint" in proc.stderr


def test_token_required_and_accepted(burrow: Launcher) -> None:
    config = server_config([(HOST_A, TUNNEL_A)])
    config["burrow"] = {"admin": "127.0.0.1:0", "admin_token": TOKEN}
    server = burrow.start("server", config, workers=1)
    admin = admin_address(server)
    assert get(admin, "/api/summary")[0] == 401
    assert get(admin, "/metrics", "wrong-token-wrong-token")[0] == 401
    assert get(admin, "/metrics", TOKEN)[0] == 200
    assert get(admin, "/healthz")[0] == 200  # liveness needs no token
    assert get(admin, "/readyz")[0] == 200  # nor readiness (probes)
    config_json = api(admin, "/api/config", TOKEN)
    assert config_json["burrow"]["admin_token"] == "<redacted>"
    assert TOKEN not in server.stderr() + server.stdout()


def test_access_log_one_json_line_per_connection(
    burrow: Launcher, bulk_peer: TcpPeer, tmp_path: Path
) -> None:
    """[burrow] access_log with gost's log section: JSON lines in log.output's file."""
    out = tmp_path / "burrow.log"
    config = server_config([(HOST_A, TUNNEL_A)])
    config["burrow"] = {"access_log": ["service-0"]}
    config["log"] = {"level": "info", "format": "json", "output": str(out)}
    server = burrow.start("server", config, workers=1)
    relay = server.listener("relay").address
    nodes = [forward_node("web", bulk_peer.address)]
    client = burrow.start("client-a", client_config(relay, TUNNEL_A, [client_service("c", nodes)]))
    client.wait_log(r"tunnel\.up", timeout=UP_TIMEOUT)
    entry = addr(server, "entrypoint")
    assert post(entry, HOST_A, 100_000, 50_000) == 200
    with socket.create_connection(entry, timeout=5.0) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: nowhere.example\r\n\r\n")
        assert read_http_response(sock)[0] == 502

    def lines() -> list[dict[str, Any]] | None:
        rows = [json.loads(x) for x in out.read_text().splitlines() if '"access"' in x]
        return rows if len(rows) >= 2 else None

    rows = wait_for("two access lines", lines, STATS_TIMEOUT)
    ok = next(r for r in rows if r["outcome"] == "ok")
    assert (ok["service"], ok["tunnel"], ok["host"]) == ("service-0", TUNNEL_A[:8], HOST_A)
    assert ok["bytes_up"] >= 100_000 and ok["bytes_down"] >= 50_000
    assert ok["source"].startswith("127.0.0.1:") and ok["connector"]
    bad = next(r for r in rows if r["outcome"] == "502")
    assert bad["host"] == "nowhere.example"
    assert server.stderr() == ""  # every line went to log.output


def test_tunnel_client_ready_only_when_registered(burrow: Launcher, bulk_peer: TcpPeer) -> None:
    """A tunnel client's /readyz says 503 until its tunnel is registered, then 200."""
    nodes = [forward_node("web", bulk_peer.address)]
    with socket.socket() as probe:  # a port nobody listens on: the client cannot register
        probe.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{probe.getsockname()[1]}"
        lonely = burrow.start(
            "lonely", client_config(dead, TUNNEL_B, [client_service("c", nodes)]),
            args=["-metrics", "127.0.0.1:0"],
        )  # fmt: skip
        lonely.wait_log(r"tunnel\.dial_failed", timeout=UP_TIMEOUT)
        status, body = get(admin_address(lonely), "/readyz")
        assert status == 503 and b"tunnel not registered: c" in body

    server = burrow.start("server", server_config([(HOST_A, TUNNEL_A)]), workers=1)
    relay = server.listener("relay").address
    client = burrow.start(
        "client", client_config(relay, TUNNEL_A, [client_service("c", nodes)]),
        args=["-metrics", "127.0.0.1:0"],
    )  # fmt: skip
    admin = admin_address(client)
    wait_for("client ready", lambda: get(admin, "/readyz")[0] == 200 or None, STATS_TIMEOUT)
    (row,) = api(admin, "/api/tunnels")["tunnels"]
    (conn,) = row["connectors"]
    assert (row["tunnel_id"], conn["role"], conn["service"]) == (TUNNEL_A, "client", "c")
    assert conn["peer"] == relay


def test_reloads_counted_ok_and_failed(burrow: Launcher) -> None:
    """SIGHUP with a good file counts ok, with a broken one failed (the old config serves on)."""
    config = server_config([(HOST_A, TUNNEL_A)])
    config["burrow"] = {"admin": "127.0.0.1:0"}
    path = burrow.write_yaml("server", config)
    server = burrow.start("server", path, workers=1)
    admin = admin_address(server)
    config["ingresses"][0]["rules"].append({"hostname": HOST_B, "endpoint": TUNNEL_B})
    burrow.write_yaml("server", config)
    server.proc.send_signal(signal.SIGHUP)
    server.wait_log(r"reload\.done", timeout=UP_TIMEOUT)
    path.write_text("services: [")
    server.proc.send_signal(signal.SIGHUP)
    server.wait_log(r"reload\.failed", timeout=UP_TIMEOUT)
    text = scrape(admin)
    assert metric(text, "burrow_reloads_total", result="ok") == 1
    assert metric(text, "burrow_reloads_total", result="failed") == 1
    assert api(admin, "/api/summary")["reloads"] == {"ok": 1, "failed": 1}


def test_auth_failures_counted_and_secrets_redacted(burrow: Launcher) -> None:
    """Wrong BIND passwords show in burrow_auth_failures_total; /api/config hides passwords."""
    from burrow.common.ids import TunnelId
    from burrow.proto.relay import Cmd, RelayRequest
    from burrow.proto.relay_features import TunnelFeature, UserAuthFeature

    secret = "bind-Secret-1-abcdef"
    config = server_config([(HOST_A, TUNNEL_A)], dialect="tunnel")
    config["tunnels"] = [{"id": TUNNEL_A, "bind": {"username": "app", "password": secret}}]
    config["burrow"] = {"admin": "127.0.0.1:0"}
    server = burrow.start("server", config, workers=1)
    admin = admin_address(server)
    relay = addr(server, "relay")
    for _ in range(3):
        req = RelayRequest(
            Cmd.BIND,
            (UserAuthFeature("app", "wrong"), TunnelFeature(TunnelId.parse(TUNNEL_A), 20)),
        )
        with socket.create_connection(relay, timeout=10.0) as sock:
            sock.sendall(req.encode())
            while sock.recv(4096):
                pass

    def failures() -> float | None:
        n = metric(scrape(admin), "burrow_auth_failures_total", service="service-0")
        return n if n >= 3 else None

    assert wait_for("3 auth failures", failures, STATS_TIMEOUT) == 3
    status, body = get(admin, "/api/config")
    assert status == 200 and secret.encode() not in body and b"<redacted>" in body
