"""Operable on a real host (issue 11): one owner per address, dual-stack ``:port``, socket
activation by a parent of another uid, sd_notify states, default workers from CPU affinity.

Real ``burrow`` processes on 127.0.0.1 and ::1.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e.conftest import TUNNEL_A
from e2e.harness import (
    BurrowProcess,
    Launcher,
    client_config,
    client_service,
    forward_node,
    server_config,
    wait_for,
)
from e2e.peers import HttpPeer, http_request
from e2e.topology import HEALTHY_BODY, HEALTHY_HOST, wait_healthy

from burrow.supervisor.portowner import holders, read_table

SD_PARENT = Path(__file__).with_name("sd_parent.py")
NOBODY = 65534
TCP_ESTABLISHED, TCP_LISTEN = 0x01, 0x0A
UP_TIMEOUT = 15.0


def free_port() -> int:
    """A port free on both families right now (bound dual-stack, then released)."""
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(("::", 0))
        return int(sock.getsockname()[1])


def spawn(
    burrow: Launcher, name: str, cmd: list[str], env: dict[str, str] | None = None
) -> BurrowProcess:
    """Start ``cmd`` (a burrow command line, perhaps behind a wrapper) as the launcher would."""
    return burrow.spawn(name, cmd, env)


def burrow_cmd(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "burrow.supervisor", "-C", str(config), *args]


def fixed_server(relay: int, entry: int) -> dict[str, Any]:
    """The guide's server on ``:relay`` with entry point ``:entry`` (both dual-stack)."""
    cfg = server_config([(HEALTHY_HOST, TUNNEL_A)])
    cfg["services"][0]["addr"] = f":{relay}"
    cfg["services"][0]["handler"]["metadata"]["entryPoint"] = f":{entry}"
    return cfg


def attach_client(burrow: Launcher, relay: int, web: HttpPeer) -> BurrowProcess:
    services = [client_service("s", [forward_node("web", web.address, HEALTHY_HOST)])]
    client = burrow.start("client", client_config(f"127.0.0.1:{relay}", TUNNEL_A, services))
    client.wait_log(r"tunnel\.up", timeout=UP_TIMEOUT)
    return client


def test_second_instance_on_the_same_ports_exits_naming_the_first_which_keeps_serving(
    burrow: Launcher, web: HttpPeer
) -> None:
    relay, entry = free_port(), free_port()
    cfg = fixed_server(relay, entry)
    first = burrow.start("first", cfg, workers=2)
    assert first.listener("relay").address == f"[::]:{relay}"
    second = burrow.start("second", cfg, workers=2, wait=False)
    assert second.proc.wait(UP_TIMEOUT) != 0
    assert "READY" not in second.stdout()
    line = second.wait_log(r"supervisor\.bind_failed")
    assert f"[::]:{relay} is already in use by another process" in line, line
    held = re.search(r"held by pid (\d+) ", line)
    assert held is not None, line
    assert os.getpgid(int(held[1])) == first.proc.pid  # the first burrow, named
    assert "ReusePort" not in second.stderr()
    # The first one holds every connection: 20 of 20 requests reach the tunnel, both families.
    attach_client(burrow, relay, web)
    wait_healthy(("127.0.0.1", entry), UP_TIMEOUT)
    for i in range(20):
        host = "::1" if i % 2 else "127.0.0.1"
        assert http_request((host, entry), HEALTHY_HOST) == (200, HEALTHY_BODY)
    assert first.alive()


def test_instances_started_together_leave_exactly_one_owner(burrow: Launcher) -> None:
    relay = free_port()
    cfg = server_config([(HEALTHY_HOST, TUNNEL_A)], entrypoint=False)
    cfg["services"][0]["addr"] = f":{relay}"
    path = burrow.write_yaml("racer", cfg)
    racers = [spawn(burrow, f"racer-{i}", burrow_cmd(path, "--workers", "1")) for i in range(3)]

    def settled() -> list[BurrowProcess] | None:
        ready = [bp for bp in racers if "READY " in bp.stdout()]
        failed = [bp for bp in racers if bp.proc.poll() is not None]
        return ready if len(ready) + len(failed) == len(racers) else None

    ready = wait_for("every racer to serve or exit", settled, 30.0)
    assert len(ready) == 1, burrow.report()
    for bp in racers:
        if bp is not ready[0]:
            assert bp.proc.returncode != 0
            assert f"[::]:{relay} is already in use" in bp.wait_log(r"supervisor\.bind_failed")


def test_colon_port_entry_point_answers_over_ipv4_and_ipv6(burrow: Launcher, web: HttpPeer) -> None:
    cfg = server_config([(HEALTHY_HOST, TUNNEL_A)])
    cfg["services"][0]["handler"]["metadata"]["entryPoint"] = ":0"
    server = burrow.start("server", cfg, workers=2)
    entry = server.listener("entrypoint")
    assert entry.host == "::"
    services = [client_service("s", [forward_node("web", web.address, HEALTHY_HOST)])]
    burrow.start("client", client_config(server.listener("relay").address, TUNNEL_A, services))
    wait_healthy(("127.0.0.1", entry.port), UP_TIMEOUT)
    assert http_request(("::1", entry.port), HEALTHY_HOST) == (200, HEALTHY_BODY)
    assert http_request(("127.0.0.1", entry.port), HEALTHY_HOST) == (200, HEALTHY_BODY)


def _holder_pid(port: int, client: socket.socket) -> int | None:
    """The pid holding the accepted end of ``client``'s connection to ``port`` (once accepted)."""
    mine = client.getsockname()[1]
    rows = [
        r
        for table in ("tcp", "tcp6")
        for r in read_table(table)
        if r.port == port and r.remote_port == mine and r.state == TCP_ESTABLISHED and r.inode
    ]
    found = holders({r.inode for r in rows}) if rows else {}
    return next(iter(found), None)


@pytest.fixture
def short_runtime() -> Iterator[Path]:
    """A RuntimeDirectory= stand-in with a short path: pytest's (and xdist's) temporary paths
    can overflow a unix socket name (107 bytes) once the run directory and socket are added."""
    path = Path(tempfile.mkdtemp(prefix="brt-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.parametrize("reuseport", [False, True], ids=["plain", "ReusePort"])
def test_socket_activation_by_another_uid_serves_on_every_worker(
    burrow: Launcher, short_runtime: Path, reuseport: bool
) -> None:
    assert os.geteuid() == 0, "the parent binds as another uid: run the suite as root (CI does)"
    relay = free_port()
    cfg = server_config([(HEALTHY_HOST, TUNNEL_A)])
    cfg["services"][0]["addr"] = f":{relay}"
    path = burrow.write_yaml("activated", cfg)
    runtime = short_runtime
    parent = [sys.executable, str(SD_PARENT), "--uid", str(NOBODY), "--port", str(relay)]
    parent += ["--reuseport"] if reuseport else []
    bp = spawn(
        burrow,
        "activated",
        [*parent, "--", *burrow_cmd(path, "--workers", "2")],
        env={"RUNTIME_DIRECTORY": str(runtime)},
    )
    bp.wait_ready()
    assert bp.workers == 2 and bp.listener("relay").address == f"[::]:{relay}"
    # One listening socket on the port, owned by the other uid: no SO_REUSEPORT siblings.
    listening = [r for r in read_table("tcp6") + read_table("tcp") if r.port == relay]
    listening = [r for r in listening if r.state == TCP_LISTEN]
    assert [r.uid for r in listening] == [NOBODY]
    assert "systemd.unused_socket" not in bp.stderr()
    assert [p.name[:7] for p in runtime.iterdir()] == ["burrow-"]  # RuntimeDirectory= used
    workers = {int(pid) for pid in re.findall(r"worker\.started worker=\d pid=(\d+)", bp.stderr())}
    assert len(workers) == 2
    seen: set[int] = set()
    deadline = time.monotonic() + 30
    while seen != workers and time.monotonic() < deadline:
        host = "::1" if len(seen) % 2 else "127.0.0.1"  # both families reach the [::] socket
        with socket.create_connection((host, relay), timeout=5) as conn:
            seen.add(wait_for("the accept", lambda c=conn: _holder_pid(relay, c), 10.0))
    assert seen == workers, f"connections landed on {seen}, workers are {workers}"


def test_sd_notify_ready_reloading_stopping(burrow: Launcher, tmp_path: Path) -> None:
    path = burrow.write_yaml("notified", server_config([(HEALTHY_HOST, TUNNEL_A)]))
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(str(tmp_path / "notify"))
        notify.settimeout(UP_TIMEOUT)
        bp = spawn(
            burrow,
            "notified",
            burrow_cmd(path, "--workers", "2"),
            env={"NOTIFY_SOCKET": str(tmp_path / "notify")},
        )
        bp.wait_ready()
        assert notify.recv(4096) == b"READY=1"
        bp.proc.send_signal(signal.SIGHUP)
        state, _, stamp = notify.recv(4096).partition(b"\n")
        assert state == b"RELOADING=1" and stamp.startswith(b"MONOTONIC_USEC=")
        assert 0 < int(stamp.split(b"=")[1]) <= time.monotonic_ns() // 1000
        assert notify.recv(4096) == b"READY=1"
        bp.wait_log(r"reload\.done")
        bp.proc.send_signal(signal.SIGTERM)
        assert notify.recv(4096) == b"STOPPING=1"
        assert bp.proc.wait(UP_TIMEOUT) == 0


def test_default_workers_are_the_cpus_this_process_may_use(burrow: Launcher) -> None:
    path = burrow.write_yaml("pinned", server_config([(HEALTHY_HOST, TUNNEL_A)]))
    cpu = min(os.sched_getaffinity(0))
    bp = spawn(burrow, "pinned", ["taskset", "-c", str(cpu), *burrow_cmd(path)])
    bp.wait_ready()
    assert bp.workers == 1
