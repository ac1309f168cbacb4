"""One-process mode end to end (issue 11, item 4): tunnel clients and visitors without a pool.

Real processes: a Burrow server (a pool, it has a relay port) and tunnel clients / visitors
started without --workers, which must run as exactly one process with no ZeroMQ loaded, serve
end to end, drain on SIGTERM and reload in place on SIGHUP; --workers N still gives the pool.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e.conftest import TUNNEL_A, TUNNEL_SVC
from e2e.harness import (
    BurrowProcess,
    Launcher,
    client_config,
    client_service,
    forward_node,
    server_config,
    subprocess_env,
    visitor_config,
    visitor_service,
    wait_for,
)
from e2e.peers import EchoPeer, HttpPeer, UdpEchoPeer, exchange, http_request, udp_roundtrip
from e2e.test_lifecycle import DOWNLOAD, Download, SlowDownloadPeer

UP_TIMEOUT = 10.0
WEB_HOST = "web.example.com"
ECHO_HOST = "echo.srv.local"
SLOW_HOST = "slow.srv.local"
WEB_BODY = b"web-a host=web.example.com"  # what HttpPeer("web-a") answers for WEB_HOST


def children(pid: int) -> list[int]:
    """Pids whose parent is ``pid`` (a scan of /proc, so no thread is missed)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces and parentheses; the fields after it do not.
        if int(stat.rpartition(")")[2].split()[1]) == pid:
            out.append(int(entry.name))
    return out


def assert_one_process(bp: BurrowProcess) -> None:
    """READY says workers=1, the process has no children and no ZeroMQ mapped."""
    assert bp.workers == 1, bp.stdout()
    assert children(bp.proc.pid) == []
    maps = Path(f"/proc/{bp.proc.pid}/maps").read_text()
    assert "zmq" not in maps
    assert "mode=one-process" in bp.stderr()


def start_server(burrow: Launcher, rules: list[tuple[str, str]]) -> tuple[BurrowProcess, str]:
    """A Burrow server (pool of 1) and its relay address."""
    server = burrow.start("server", server_config(rules))
    return server, server.listener("relay").address


def relay_node(relay: str, tunnel: str) -> str:
    """The -F URL of the server's relay port for ``tunnel``."""
    return f"relay://{relay}?tunnelID={tunnel}"


@pytest.fixture
def web_a() -> Iterator[HttpPeer]:
    """An HTTP backend answering `web-a host=<Host>`."""
    peer = HttpPeer("web-a")
    yield peer
    peer.close()


@pytest.fixture
def slow_peer() -> Iterator[SlowDownloadPeer]:
    """The 30 MB paced download backend of the lifecycle tests."""
    peer = SlowDownloadPeer()
    yield peer
    peer.close()


def test_client_and_visitor_from_flags_are_one_process_each(
    burrow: Launcher, web_a: HttpPeer
) -> None:
    """-L/-F tunnel client and TCP visitor: one process each, requests work through both."""
    server, relay = start_server(burrow, [(WEB_HOST, TUNNEL_A)])
    client = burrow.start_cli(
        "client", ["-L", f"rtcp://:0/{web_a.address}", "-F", relay_node(relay, TUNNEL_A)]
    )
    client.wait_log(r"tunnel\.up", timeout=UP_TIMEOUT)
    visitor = burrow.start_cli(
        "visitor",
        ["-L", f"tcp://127.0.0.1:0/{WEB_HOST}:0", "-F", relay_node(relay, TUNNEL_A)],
    )
    entry = server.listener("entrypoint")
    vis = visitor.listener("visitor")
    for _ in range(3):
        assert http_request((entry.host, entry.port), WEB_HOST) == (200, WEB_BODY)
        assert http_request((vis.host, vis.port), WEB_HOST) == (200, WEB_BODY)
    assert_one_process(client)
    assert_one_process(visitor)
    client.proc.send_signal(signal.SIGHUP)  # no file behind -L/-F
    assert "nothing to reload" in client.wait_log(r"reload\.nothing", timeout=UP_TIMEOUT)
    assert client.stop() == 0
    assert visitor.stop() == 0


def test_udp_visitor_is_one_process(burrow: Launcher, udp_echo_peer: UdpEchoPeer) -> None:
    """An rudp client and a UDP visitor from -L/-F: one process each, datagrams echo."""
    _, relay = start_server(burrow, [("udp.srv.local", TUNNEL_SVC)])
    client = burrow.start_cli(
        "client",
        ["-L", f"rudp://:0/{udp_echo_peer.address}", "-F", relay_node(relay, TUNNEL_SVC)],
    )
    client.wait_log(r"tunnel\.up", timeout=UP_TIMEOUT)
    visitor = burrow.start_cli(
        "visitor",
        ["-L", "udp://127.0.0.1:0/udp.srv.local:0", "-F", relay_node(relay, TUNNEL_SVC)],
    )
    dgram = visitor.listener("visitor", udp=True)
    got = wait_for(
        "a datagram echoed through the UDP visitor",
        lambda: udp_roundtrip((dgram.host, dgram.port), b"ping", 1.0),
        UP_TIMEOUT,
    )
    assert got == b"ping"
    assert_one_process(client)
    assert_one_process(visitor)


def test_workers_flag_keeps_the_pool(burrow: Launcher, web_a: HttpPeer) -> None:
    """`--workers 2` on a tunnel client: a supervisor with two worker processes, as before."""
    _, relay = start_server(burrow, [(WEB_HOST, TUNNEL_A)])
    args = ["-L", f"rtcp://:0/{web_a.address}", "-F", relay_node(relay, TUNNEL_A)]
    client = burrow.start_cli("client", [*args, "--workers", "2"])
    assert client.workers == 2
    assert len(children(client.proc.pid)) == 2
    assert "mode=one-process" not in client.stderr()


def one_process_trio(
    burrow: Launcher, slow: SlowDownloadPeer
) -> tuple[BurrowProcess, BurrowProcess, Download]:
    """Server, one-process client (slow target) and visitor, and a download under way."""
    _, relay = start_server(burrow, [(SLOW_HOST, TUNNEL_A)])
    client = burrow.start_cli("client", [
        "-C", str(burrow.write_yaml("client", client_config(
            relay, TUNNEL_A, [client_service("s", [forward_node("slow", slow.address)])]))),
    ])  # fmt: skip
    client.wait_log(r"tunnel\.up", timeout=UP_TIMEOUT)
    visitor = burrow.start_cli("visitor", [
        "-C", str(burrow.write_yaml("visitor", visitor_config(
            relay, TUNNEL_A, [visitor_service("slow", target=f"{SLOW_HOST}:0")]))),
    ])  # fmt: skip
    assert_one_process(client)
    assert_one_process(visitor)
    vis = visitor.listener("visitor")
    dl = Download((vis.host, vis.port))
    dl.wait_started()
    return client, visitor, dl


def test_sigterm_one_process_visitor_finishes_download(
    burrow: Launcher, slow_peer: SlowDownloadPeer
) -> None:
    """SIGTERM mid-download: the visitor drains (30 MB arrive in full), then exits 0."""
    _client, visitor, dl = one_process_trio(burrow, slow_peer)
    visitor.proc.send_signal(signal.SIGTERM)
    visitor.wait_log(r"worker\.draining", timeout=UP_TIMEOUT)
    assert dl.finish() == DOWNLOAD, (dl.error, slow_peer.report())
    assert dl.error is None
    assert visitor.proc.wait(15) == 0
    assert "supervisor.stopping signal=SIGTERM" in visitor.stderr()


def test_sigterm_one_process_client_finishes_download(
    burrow: Launcher, slow_peer: SlowDownloadPeer
) -> None:
    """SIGTERM to the one-process tunnel client mid-download: the stream finishes, exit 0."""
    client, _visitor, dl = one_process_trio(burrow, slow_peer)
    client.proc.send_signal(signal.SIGTERM)
    client.wait_log(r"worker\.draining", timeout=UP_TIMEOUT)
    assert dl.finish() == DOWNLOAD, (dl.error, slow_peer.report())
    assert dl.error is None
    assert client.proc.wait(15) == 0


def test_second_sigterm_stops_one_process_at_once(
    burrow: Launcher, slow_peer: SlowDownloadPeer
) -> None:
    """A second SIGTERM during the drain: the download is cut and the visitor exits 0."""
    _client, visitor, dl = one_process_trio(burrow, slow_peer)
    visitor.proc.send_signal(signal.SIGTERM)
    visitor.wait_log(r"worker\.draining", timeout=UP_TIMEOUT)
    visitor.proc.send_signal(signal.SIGTERM)
    assert dl.finish() < DOWNLOAD
    assert visitor.proc.wait(15) == 0


def test_sighup_changes_one_process_visitor_target_in_place(
    burrow: Launcher, echo_peer: EchoPeer, web_a: HttpPeer
) -> None:
    """SIGHUP with an edited file: same pid, new target for new connections, old one kept."""
    _, relay = start_server(burrow, [(ECHO_HOST, TUNNEL_A), (WEB_HOST, TUNNEL_A)])
    nodes = [
        forward_node("echo", echo_peer.address, ECHO_HOST),
        forward_node("web", web_a.address, WEB_HOST),
    ]
    client = burrow.start_cli("client", [
        "-C", str(burrow.write_yaml("client", client_config(
            relay, TUNNEL_A, [client_service("s", nodes)]))),
    ])  # fmt: skip
    client.wait_log(r"tunnel\.up", timeout=UP_TIMEOUT)

    def config(target: str) -> dict[str, object]:
        return visitor_config(relay, TUNNEL_A, [visitor_service("moving", target=target)])

    path = burrow.write_yaml("visitor", config(f"{ECHO_HOST}:0"))
    visitor = burrow.start_cli("visitor", ["-C", str(path)])
    assert_one_process(visitor)
    vis = visitor.listener("visitor")
    address = (vis.host, vis.port)
    assert exchange(address, b"ping", 4) == b"ping"
    held = socket.create_connection(address, timeout=5.0)
    with held:
        held.sendall(b"old")
        assert held.recv(3) == b"old"
        burrow.write_yaml("visitor", config(f"{WEB_HOST}:0"))
        visitor.proc.send_signal(signal.SIGHUP)
        visitor.wait_log(r"reload\.done", timeout=UP_TIMEOUT)
        assert http_request(address, WEB_HOST) == (200, WEB_BODY)
        held.sendall(b"kept")  # the connection opened before the reload keeps its target
        got = b""
        while len(got) < 4:
            chunk = held.recv(4 - len(got))
            assert chunk, got
            got += chunk
        assert got == b"kept"
    path.write_text("services: [")  # broken: the reload fails, the running config serves on
    visitor.proc.send_signal(signal.SIGHUP)
    line = visitor.wait_log(r"reload\.failed", timeout=UP_TIMEOUT)
    assert "visitor.yaml" in line and "fix=" in line, line
    assert http_request(address, WEB_HOST) == (200, WEB_BODY)
    assert_one_process(visitor)


def test_one_process_notifies_systemd(
    burrow: Launcher, tmp_path: Path, echo_peer: EchoPeer
) -> None:
    """READY=1 at start, RELOADING=1 then READY=1 on SIGHUP, STOPPING=1 on SIGTERM."""
    _, relay = start_server(burrow, [(ECHO_HOST, TUNNEL_A)])
    path = burrow.write_yaml("visitor", visitor_config(
        relay, TUNNEL_A, [visitor_service("v", target=f"{ECHO_HOST}:0")]))  # fmt: skip
    notify = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sd:
        sd.bind(str(notify))
        sd.settimeout(UP_TIMEOUT)
        visitor = burrow.start_cli("visitor", ["-C", str(path)], env={"NOTIFY_SOCKET": str(notify)})
        assert_one_process(visitor)
        assert sd.recv(4096) == b"READY=1"
        visitor.proc.send_signal(signal.SIGHUP)
        assert sd.recv(4096).startswith(b"RELOADING=1")  # (+ MONOTONIC_USEC=, notify-reload)
        assert sd.recv(4096) == b"READY=1"
        visitor.wait_log(r"reload\.done", timeout=UP_TIMEOUT)
        visitor.proc.send_signal(signal.SIGTERM)
        assert sd.recv(4096) == b"STOPPING=1"
        assert visitor.proc.wait(15) == 0


def test_one_process_run_imports_no_zeromq() -> None:
    """The one-process path's modules load without zmq, the registry, spawn or the server, nor
    the WebSocket library (a plain-TCP client loads its transports only when it dials one)."""
    code = (
        "import sys\n"
        "import burrow.supervisor.cli, burrow.supervisor.run, burrow.supervisor.oneproc\n"
        "import burrow.supervisor.solo\n"
        "import burrow.worker.standalone, burrow.client.tunnel, burrow.client.visitor\n"
        "import burrow.client.udp_visitor\n"
        "bad = [m for m in sys.modules if m in ('zmq', 'websockets')"
        " or m.startswith(('zmq.', 'websockets.', 'burrow.server'))"
        " or m in ('burrow.supervisor.arbiter', 'burrow.supervisor.registry',"
        " 'burrow.supervisor.spawn', 'burrow.worker.bus', 'burrow.worker.app')]\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=subprocess_env(), timeout=30, check=True)  # fmt: skip
    assert out.stdout.strip() == "[]", out.stderr


def test_exec_image_drops_the_config_loaders(burrow: Launcher) -> None:
    """After the exec, the serving image never imported argparse, the loaders, zmq or the server."""
    node = relay_node("127.0.0.1:1", TUNNEL_A)  # no server needed to listen and be READY
    visitor = burrow.start_cli("visitor", ["-L", "tcp://127.0.0.1:0/x.local:0", "-F", node],
                        env={"PYTHONPROFILEIMPORTTIME": "1"})  # fmt: skip
    assert_one_process(visitor)
    images = visitor.stderr().split("import time: self [us] | cumulative | imported package")
    assert len(images) == 3, "expected two interpreter images (burrow, then the exec'd solo)"
    first, second = (
        {line.split("|")[2].strip() for line in image.splitlines() if line.count("|") == 2}
        for image in images[1:]
    )
    assert {"argparse", "burrow.config.load"} <= first
    banned = {"argparse", "burrow.config.load", "burrow.config.plan", "zmq", "burrow.server"}
    assert "burrow.client.visitor" in second  # (import_module of the runner itself is not timed)
    assert not {m for m in second if m in banned or m.startswith(("zmq.", "burrow.server."))}
