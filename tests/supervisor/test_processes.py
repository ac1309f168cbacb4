"""The supervisor as a real process group over the tiny worker: spread, restart, boot halt, drain,
rolling reload, heartbeat kill, lifeline and registry propagation. Every wait has a deadline."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .harness import Driver, ask, wait_pid_exit

LISTEN = "--listen=svc/entrypoint/tcp/127.0.0.1:0"
DriverFactory = Callable[..., Driver]


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[DriverFactory]:
    started: list[Driver] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Driver:
        d = Driver(tmp_path, LISTEN, *args, env=env)
        started.append(d)
        return d

    yield start
    for d in started:
        d.teardown()
        print(d.log())  # shown by pytest only when the test failed


def until(deadline: float, what: str, log: Callable[[], str]) -> None:
    if time.monotonic() > deadline:
        raise AssertionError(f"timed out waiting for {what}; log:\n{log()}")


def test_connections_spread_over_workers(driver: DriverFactory) -> None:
    d = driver("--workers=4")
    tokens = d.wait_ready()
    assert tokens["workers"] == "4"
    port = d.port(tokens)
    answers = [ask(port) for _ in range(200)]
    seen = {a["worker"] for a in answers}
    assert len(answers) == 200 and all(a["gen"] == "0" for a in answers)
    assert len(seen) > 1 and seen <= {"0", "1", "2", "3"}


def test_killed_worker_is_replaced_without_refusals(driver: DriverFactory) -> None:
    d = driver("--workers=3")
    port = d.port(d.wait_ready())
    pids: dict[str, str] = {}
    deadline = time.monotonic() + 20
    while "0" not in pids:
        until(deadline, "worker 0 to answer", d.log)
        a = ask(port)
        pids[a["worker"]] = a["pid"]
    victim = int(pids["0"])
    os.kill(victim, signal.SIGKILL)
    assert wait_pid_exit(victim, 10)
    replacement = None
    answered = 0
    deadline = time.monotonic() + 20
    while replacement is None or answered < 100:
        until(deadline, "a replacement for worker 0", d.log)
        a = ask(port)  # raises on refusal or timeout
        answered += 1
        if a["worker"] == "0":
            assert a["pid"] != str(victim)
            replacement = a["pid"]
    assert "killed by SIGKILL (out of memory?)" in d.log()


def test_boot_failure_halts_with_exit_3(driver: DriverFactory, tmp_path: Path) -> None:
    boots = tmp_path / "boots"
    d = driver("--workers=2", env={"TINY_BOOT_FAIL": "1", "TINY_BOOT_LOG": str(boots)})
    assert d.wait(20) == 3
    assert d.readline(5) is None  # never READY
    log = d.log()
    assert "failed to boot" in log and "worker-" in log
    # No restart storm: at most one boot per slot (the halt may race the second slot's boot).
    assert len(boots.read_text().splitlines()) <= 2


def test_sigterm_drains_inflight_then_exits_0(driver: DriverFactory) -> None:
    d = driver("--workers=2")
    port = d.port(d.wait_ready())
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"wait\n")
        reader = sock.makefile("rb")
        assert reader.readline().startswith(b"worker=")
        d.signal(signal.SIGTERM)
        assert reader.readline() == b"draining\n"
        sock.sendall(b"go\n")
        assert reader.readline() == b"bye\n"
        reader.close()
    assert d.wait(15) == 0


def test_sighup_rolls_every_worker_without_failures(driver: DriverFactory) -> None:
    d = driver("--workers=3")
    port = d.port(d.wait_ready())
    d.signal(signal.SIGHUP)
    latest: dict[str, str] = {}
    tail: list[str] = []
    deadline = time.monotonic() + 30
    # Keep connecting throughout the roll: every attempt must be answered.
    while len(latest) < 3 or set(latest.values()) != {"1"} or len(tail) < 60:
        until(deadline, f"generation 1 everywhere (seen {latest})", d.log)
        a = ask(port)
        latest[a["worker"]] = a["gen"]
        tail = tail + [a["gen"]] if set(latest.values()) == {"1"} and len(latest) == 3 else []
    assert set(tail) == {"1"}


def test_silent_worker_is_killed_and_replaced(driver: DriverFactory, tmp_path: Path) -> None:
    hang = tmp_path / "hang"
    d = driver(
        "--workers=2",
        "--heartbeat-interval=0.2",
        env={"TINY_HANG_ONCE": str(hang)},
    )
    port = d.port(d.wait_ready())
    hung = int(hang.read_text())
    assert wait_pid_exit(hung, 15), d.log()
    seen: set[str] = set()
    deadline = time.monotonic() + 20
    while seen != {"0", "1"}:
        until(deadline, "both slots answering", d.log)
        a = ask(port)
        assert a["pid"] != str(hung)
        seen.add(a["worker"])
    log = d.log()
    assert "worker.unresponsive" in log and "no heartbeat" in log


def test_workers_exit_when_supervisor_is_killed(driver: DriverFactory, tmp_path: Path) -> None:
    boots = tmp_path / "boots"
    d = driver("--workers=2", env={"TINY_BOOT_LOG": str(boots)})
    d.wait_ready()
    pids = [int(line.split()[1]) for line in boots.read_text().splitlines()]
    assert len(pids) == 2
    d.signal(signal.SIGKILL)
    assert d.wait(10) == -signal.SIGKILL
    for pid in pids:
        assert wait_pid_exit(pid, 10), f"worker {pid} outlived its supervisor"


def test_connector_visible_everywhere_and_dropped_with_owner(driver: DriverFactory) -> None:
    d = driver("--workers=3", env={"TINY_CONNECTOR": "1"})
    port = d.port(d.wait_ready())
    own: dict[str, tuple[str, str]] = {}
    views: dict[str, set[str]] = {}
    deadline = time.monotonic() + 20
    while len(own) < 3 or any(views[w] != {c for c, _ in own.values()} for w in own):
        until(deadline, f"every view to list every connector ({own}, {views})", d.log)
        a = ask(port)
        own[a["worker"]] = (a["cid"], a["pid"])
        views[a["worker"]] = set(a["view"].split(","))
    victim_cid, victim_pid = own["1"]
    os.kill(int(victim_pid), signal.SIGKILL)
    assert wait_pid_exit(int(victim_pid), 10)
    pending = {"0", "2"}
    deadline = time.monotonic() + 20
    while pending:
        until(deadline, f"{victim_cid} to vanish from workers {pending}", d.log)
        a = ask(port)
        if a["worker"] in pending and victim_cid not in a["view"].split(","):
            assert own[a["worker"]][0] in a["view"].split(",")
            pending.discard(a["worker"])
