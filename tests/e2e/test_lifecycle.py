"""Worker lifecycle end to end (issue 10): drains of every role, truthful reloads, plans held.

Real processes: a server, a tunnel client and a visitor, each its own `burrow`. The slow
download backend sends 30 MB paced over about 3 s, so a SIGTERM lands mid-transfer.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e.conftest import TUNNEL_A
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
from e2e.peers import EchoPeer, TcpPeer, exchange, http_request, read_http_head
from e2e.topology import listener_address

UP_TIMEOUT = 10.0
DOWNLOAD = 30 * 1024 * 1024
CHUNK = 64 * 1024
PACE = 3.0  # seconds for the whole download
SLOW_HOST = "slow.srv.local"
ECHO_HOST = "echo.srv.local"
WEB_HOST = "web.example.com"
ROUTED = [(h, TUNNEL_A) for h in (SLOW_HOST, ECHO_HOST, WEB_HOST)]


class SlowDownloadPeer(TcpPeer):
    """Sends DOWNLOAD bytes to every connection, paced over PACE seconds, then closes."""

    def __init__(self) -> None:
        super().__init__(self._serve)
        # What the last connection got: bytes handed to the kernel and how sending ended, so
        # a short download says which side cut it.
        self.sent = 0
        self.ended = "running"

    def _serve(self, conn: socket.socket) -> None:
        chunk = b"x" * CHUNK
        start = time.monotonic()
        self.sent = sent = 0
        self.ended = "running"
        try:
            while sent < DOWNLOAD:
                n = min(CHUNK, DOWNLOAD - sent)
                conn.sendall(chunk[:n])
                self.sent = sent = sent + n
                # The pacing is the behaviour under test (a long transfer), not synchronisation.
                ahead = start + PACE * sent / DOWNLOAD - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
            self.ended = "sent all"
        except OSError as exc:
            self.ended = f"send failed: {exc!r}"
            raise

    def report(self) -> str:
        """How the backend's last transfer went, for an assertion message."""
        return f"backend sent {self.sent} of {DOWNLOAD} bytes ({self.ended})"


class WebPeer(TcpPeer):
    """HTTP peer answering `web host=<Host>` to every request."""

    def __init__(self) -> None:
        super().__init__(self._serve)

    def _serve(self, conn: socket.socket) -> None:
        while True:
            head = read_http_head(conn)
            if not head:
                return
            body = b"web"
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n" + body)


@pytest.fixture
def slow_peer() -> Iterator[SlowDownloadPeer]:
    """The slow download backend behind the tunnel."""
    peer = SlowDownloadPeer()
    yield peer
    peer.close()


@pytest.fixture
def web_peer() -> Iterator[WebPeer]:
    """An HTTP backend behind the tunnel."""
    peer = WebPeer()
    yield peer
    peer.close()


class Download:
    """Reads everything from a visitor connection in a thread; counts the bytes."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.received = 0
        self.error: BaseException | None = None
        self.sock = socket.create_connection(address, timeout=20.0)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while True:
                data = self.sock.recv(1 << 20)
                if not data:
                    return
                self.received += len(data)
        except OSError as exc:
            self.error = exc
        finally:
            self.sock.close()

    def wait_started(self) -> None:
        """Block until the first megabyte arrived (the transfer is in flight)."""
        wait_for("1 MB downloaded", lambda: True if self.received >= 1 << 20 else None, UP_TIMEOUT)

    def finish(self, timeout: float = 20.0) -> int:
        """Wait for the end of the transfer; returns the byte count."""
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"download still running at {self.received} bytes"
        return self.received


def three_roles(
    burrow: Launcher, slow: SlowDownloadPeer, echo: EchoPeer
) -> tuple[BurrowProcess, BurrowProcess, BurrowProcess]:
    """Server, client (slow + echo targets) and a visitor for each target, all up."""
    server = burrow.start("server", server_config(ROUTED))
    relay = server.listener("relay").address
    nodes = [
        forward_node("slow", slow.address, SLOW_HOST),
        forward_node("echo", echo.address, ECHO_HOST),
    ]
    client = burrow.start(
        "client", client_config(relay, TUNNEL_A, [client_service("service-0", nodes)])
    )
    client.wait_log(r"tunnel\.up", timeout=UP_TIMEOUT)
    visitor = burrow.start(
        "visitor",
        visitor_config(
            relay,
            TUNNEL_A,
            [
                visitor_service("slow-visitor", target=f"{SLOW_HOST}:0"),
                visitor_service("echo-visitor", target=f"{ECHO_HOST}:0"),
            ],
        ),
    )
    return server, client, visitor


def vaddr(visitor: BurrowProcess, service: str) -> tuple[str, int]:
    """(host, port) of one visitor listener."""
    return listener_address(visitor, "visitor", service)


def download_in_flight(
    burrow: Launcher, slow: SlowDownloadPeer, echo: EchoPeer
) -> tuple[BurrowProcess, BurrowProcess, Download]:
    """All three roles up and a download through the slow visitor already under way."""
    _server, client, visitor = three_roles(burrow, slow, echo)
    dl = Download(vaddr(visitor, "slow-visitor"))
    dl.wait_started()
    return client, visitor, dl


def test_sigterm_visitor_finishes_download(
    burrow: Launcher, slow_peer: SlowDownloadPeer, echo_peer: EchoPeer
) -> None:
    """SIGTERM to a visitor mid-download: the 30 MB arrive in full, the visitor exits 0."""
    _client, visitor, dl = download_in_flight(burrow, slow_peer, echo_peer)
    visitor.proc.send_signal(signal.SIGTERM)
    # The listener is closed at once: a new connection is refused or closed without data.
    assert dl.finish() == DOWNLOAD, (dl.error, slow_peer.report())
    assert dl.error is None
    assert visitor.proc.wait(15) == 0


def test_sigterm_client_finishes_download(
    burrow: Launcher, slow_peer: SlowDownloadPeer, echo_peer: EchoPeer
) -> None:
    """SIGTERM to a tunnel client mid-download: the stream finishes, then the client exits 0."""
    client, _visitor, dl = download_in_flight(burrow, slow_peer, echo_peer)
    client.proc.send_signal(signal.SIGTERM)
    client.wait_log(r"worker\.draining", timeout=UP_TIMEOUT)
    assert dl.finish() == DOWNLOAD, (dl.error, slow_peer.report())
    assert dl.error is None
    assert client.proc.wait(15) == 0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "systemd"])
def test_a_signal_to_the_whole_process_group_still_drains(
    burrow: Launcher, slow_peer: SlowDownloadPeer, echo_peer: EchoPeer, sig: signal.Signals
) -> None:
    """Ctrl-C in a terminal and systemd's stop signal reach every process of the group: the
    workers get it from there and again from the supervisor, and must still drain (not take the
    second copy for "stop now")."""
    _client, visitor, dl = download_in_flight(burrow, slow_peer, echo_peer)
    os.killpg(visitor.proc.pid, sig)
    visitor.wait_log(r"worker\.draining", timeout=UP_TIMEOUT)
    assert dl.finish() == DOWNLOAD, (dl.error, slow_peer.report())
    assert dl.error is None
    assert visitor.proc.wait(15) == 0


def test_second_sigterm_stops_at_once(
    burrow: Launcher, slow_peer: SlowDownloadPeer, echo_peer: EchoPeer
) -> None:
    """A second SIGTERM during the drain ends it: the download is cut, the visitor exits."""
    _client, visitor, dl = download_in_flight(burrow, slow_peer, echo_peer)
    visitor.proc.send_signal(signal.SIGTERM)
    visitor.wait_log(r"worker\.draining", timeout=UP_TIMEOUT)
    visitor.proc.send_signal(signal.SIGTERM)
    assert dl.finish() < DOWNLOAD
    assert visitor.proc.wait(15) == 0


def test_sighup_with_file_deleted_fails_and_keeps_serving(
    burrow: Launcher, web_peer: WebPeer
) -> None:
    """The config file is gone: reload.failed names the file and a fix; old rules still route."""
    path = burrow.write_yaml("server", server_config([(WEB_HOST, TUNNEL_A)]))
    server = burrow.start("server", path)
    client = burrow.start(
        "client",
        client_config(
            server.listener("relay").address,
            TUNNEL_A,
            [client_service("service-0", [forward_node("web", web_peer.address)])],
        ),
    )
    client.wait_log(r"tunnel\.up", timeout=UP_TIMEOUT)
    entry = server.listener("entrypoint")
    assert http_request((entry.host, entry.port), WEB_HOST, timeout=5.0) == (200, b"web")
    path.unlink()
    server.proc.send_signal(signal.SIGHUP)
    line = server.wait_log(r"reload\.failed", timeout=UP_TIMEOUT)
    assert "server.yaml" in line and "fix=" in line, line
    assert "reload.done" not in server.stderr()
    assert http_request((entry.host, entry.port), WEB_HOST, timeout=5.0) == (200, b"web")
    assert server.alive()


def test_sighup_without_config_file_says_nothing_to_reload(
    burrow: Launcher, tmp_path: Path
) -> None:
    """A -L run answers SIGHUP with one line saying there is nothing to reload."""
    cmd = [sys.executable, "-m", "burrow.supervisor", "-L", "relay://127.0.0.1:0", "--workers", "1"]
    out, err = tmp_path / "cli.stdout", tmp_path / "cli.stderr"
    with out.open("wb") as fo, err.open("wb") as fe:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=fo, stderr=fe,
                                env=subprocess_env(), cwd=tmp_path, start_new_session=True)  # fmt: skip
    bp = BurrowProcess("cli", proc, out, err)
    burrow.started.append(bp)
    bp.wait_ready()
    proc.send_signal(signal.SIGHUP)
    line = bp.wait_log(r"reload\.nothing", timeout=UP_TIMEOUT)
    assert "nothing to reload" in line
    assert not re.search(r"reload\.(done|start)", bp.stderr())
    assert bp.alive()


def test_replacement_worker_serves_held_plan_after_ingress_file_deleted(
    burrow: Launcher, web_peer: WebPeer, tmp_path: Path
) -> None:
    """Rules file deleted, one of two workers killed: the replacement boots from the held plan."""
    rules = tmp_path / "rules.txt"
    rules.write_text(f"{WEB_HOST} {TUNNEL_A}\n")
    config = server_config([])
    config["ingresses"][0] = {"name": "ingress-0", "file": {"path": str(rules)}}
    server = burrow.start("server", config, workers=2)
    client = burrow.start(
        "client",
        client_config(
            server.listener("relay").address,
            TUNNEL_A,
            [client_service("service-0", [forward_node("web", web_peer.address)])],
        ),
    )
    client.wait_log(r"tunnel\.up", timeout=UP_TIMEOUT)
    entry = server.listener("entrypoint")
    rules.unlink()
    pids = {int(m[1]): int(m[2]) for m in re.finditer(r"worker\.started worker=(\d+) pid=(\d+)",
                                                       server.stderr())}  # fmt: skip
    # Kill the worker holding the tunnel, so the requests below wait for the client to be back.
    held = server.wait_log(r"worker-\d+ tunnel\.up", timeout=UP_TIMEOUT)
    holder = int(re.findall(r"worker-(\d+) tunnel\.up", held)[0])
    subprocess.run(["kill", "-KILL", str(pids[holder])], check=True, timeout=5)
    server.wait_log(rf"worker\.ready worker={holder}", timeout=UP_TIMEOUT, count=2)
    client.wait_log(r"tunnel\.up", timeout=UP_TIMEOUT, count=2)
    for _ in range(20):  # fresh connections: both workers accept some of them
        assert http_request((entry.host, entry.port), WEB_HOST, timeout=5.0) == (200, b"web")
    assert server.alive()


def test_reload_done_after_every_worker_applied(burrow: Launcher, web_peer: WebPeer) -> None:
    """reload.done is logged only after both workers logged that they applied the new plans."""
    path = burrow.write_yaml("server", server_config([(WEB_HOST, TUNNEL_A)]))
    server = burrow.start("server", path, workers=2, debug=True)
    burrow.write_yaml("server", server_config([(WEB_HOST, TUNNEL_A), ("new.example", TUNNEL_A)]))
    server.proc.send_signal(signal.SIGHUP)
    server.wait_log(r"reload\.done", timeout=UP_TIMEOUT)
    lines = server.stderr().splitlines()
    done = next(i for i, line in enumerate(lines) if "reload.done" in line)
    applied = [i for i, line in enumerate(lines) if "worker.reconfigured generation=1" in line]
    assert len(applied) == 2 and max(applied) < done, lines


def test_sighup_changes_visitor_target_without_failures(
    burrow: Launcher, slow_peer: SlowDownloadPeer, echo_peer: EchoPeer, web_peer: WebPeer
) -> None:
    """A visitor's target changed by SIGHUP takes effect; the other visitor never fails."""
    server = burrow.start("server", server_config(ROUTED))
    relay = server.listener("relay").address
    nodes = [
        forward_node("echo", echo_peer.address, ECHO_HOST),
        forward_node("web", web_peer.address, WEB_HOST),
    ]
    client = burrow.start(
        "client", client_config(relay, TUNNEL_A, [client_service("service-0", nodes)])
    )
    client.wait_log(r"tunnel\.up", timeout=UP_TIMEOUT)

    def config(target: str) -> dict[str, object]:
        return visitor_config(
            relay,
            TUNNEL_A,
            [
                visitor_service("moving", target=target),
                visitor_service("steady", target=f"{ECHO_HOST}:0"),
            ],
        )

    path = burrow.write_yaml("visitor", config(f"{ECHO_HOST}:0"))
    visitor = burrow.start("visitor", path, workers=2)
    moving, steady = vaddr(visitor, "moving"), vaddr(visitor, "steady")
    assert exchange(moving, b"ping", 4) == b"ping"

    failures: list[str] = []
    ok = [0]
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                got = exchange(steady, b"steady", 6)
                if got == b"steady":
                    ok[0] += 1
                else:
                    failures.append(repr(got))
            except OSError as exc:
                failures.append(repr(exc))

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        wait_for("20 steady echoes", lambda: True if ok[0] >= 20 else None, UP_TIMEOUT)
        burrow.write_yaml("visitor", config(f"{WEB_HOST}:0"))
        visitor.proc.send_signal(signal.SIGHUP)
        visitor.wait_log(r"reload\.done", timeout=UP_TIMEOUT)
        target = ok[0] + 20
        wait_for("20 more steady echoes", lambda: True if ok[0] >= target else None, UP_TIMEOUT)
    finally:
        stop.set()
        thread.join(10)
    assert failures == []
    for _ in range(4):  # both workers: every new connection goes to the new target
        assert http_request(moving, WEB_HOST, timeout=5.0) == (200, b"web")


def test_ingress_file_reload_period(burrow: Launcher, web_peer: WebPeer, tmp_path: Path) -> None:
    """`ingresses[].reload`: a host added to the rules file is routed without a SIGHUP."""
    rules = tmp_path / "rules.txt"
    rules.write_text(f"{WEB_HOST} {TUNNEL_A}\n")
    config = server_config([])
    config["ingresses"][0] = {"name": "ingress-0", "file": {"path": str(rules)}, "reload": "300ms"}
    server = burrow.start("server", config, workers=2)
    client = burrow.start(
        "client",
        client_config(
            server.listener("relay").address,
            TUNNEL_A,
            [client_service("service-0", [forward_node("web", web_peer.address)])],
        ),
    )
    client.wait_log(r"tunnel\.up", timeout=UP_TIMEOUT)
    entry = (server.listener("entrypoint").host, server.listener("entrypoint").port)
    assert http_request(entry, "new.example", timeout=5.0)[0] == 502
    rules.write_text(f"{WEB_HOST} {TUNNEL_A}\nnew.example {TUNNEL_A}\n")
    server.wait_log(r"reload\.done", timeout=UP_TIMEOUT)
    for _ in range(6):
        assert http_request(entry, "new.example", timeout=5.0) == (200, b"web")
    assert "ingress.reload" in server.stderr()
