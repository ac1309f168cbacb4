"""The first generation of workers is forked from the zygote (burrow.worker.zygote), which
the supervisor forks from itself at start.

A forked worker must be the supervisor's child (reaped and restarted like an exec'd one) and
hold exactly what an exec'd worker holds: no fd of the supervisor's beyond the ones passed to
it (its zmq sockets, signal pipe, pidfds, other workers' lifelines), no extra threads.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections import Counter
from pathlib import Path

from e2e.conftest import TUNNEL_A
from e2e.harness import BurrowProcess, Launcher, server_config

RESTART_TIMEOUT = 30.0


def children(pid: int) -> set[int]:
    out = subprocess.run(
        ["pgrep", "-P", str(pid)], check=False, capture_output=True, text=True, timeout=5
    ).stdout
    return {int(p) for p in out.split()}


def workers(server: BurrowProcess) -> dict[int, int]:
    """Worker index -> pid, latest incarnation."""
    return {
        int(m[1]): int(m[2])
        for m in re.finditer(r"worker\.started worker=(\d+) pid=(\d+)", server.stderr())
    }


def fd_targets(pid: int) -> Counter[str]:
    """What the fds above stderr of ``pid`` point at (socket:[inode], pipe:[inode], ...)."""
    d = Path(f"/proc/{pid}/fd")
    out: Counter[str] = Counter()
    for name in os.listdir(d):
        if int(name) > 2:
            try:
                out[os.readlink(d / name)] += 1
            except FileNotFoundError:
                pass
    return out


def shared_with(worker: int, supervisor: int) -> list[str]:
    """Kinds of the open files the worker shares with the supervisor (same inode)."""
    both = fd_targets(worker).keys() & fd_targets(supervisor).keys()
    return sorted(t.split(":", 1)[0] for t in both if not t.startswith("anon_inode:"))


def cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def comm(pid: int) -> str:
    return Path(f"/proc/{pid}/comm").read_text().strip()


def start(burrow: Launcher, name: str, env: dict[str, str] | None = None) -> BurrowProcess:
    path = burrow.write_yaml(name, server_config([("zygote.test", TUNNEL_A)]))
    server = burrow.start_cli(name, ["-C", str(path), "--workers", "2"], env=env)
    server.wait_log(r"worker\.ready worker=1 ", timeout=RESTART_TIMEOUT)
    server.wait_log(r"worker\.ready worker=0 ", timeout=RESTART_TIMEOUT)
    return server


def test_forked_workers_hold_what_execd_ones_hold(burrow: Launcher) -> None:
    forked = start(burrow, "forked")
    execd = start(burrow, "execd", env={"BURROW_WORKER_ZYGOTE": "0"})
    fw, ew = workers(forked), workers(execd)
    assert children(forked.proc.pid) == set(fw.values())  # the zygote is gone, workers adopted
    assert children(execd.proc.pid) == set(ew.values())
    for i in (0, 1):
        # Forked from the zygote the supervisor forked: its command line, a worker's name.
        assert cmdline(fw[i]) == cmdline(forked.proc.pid), cmdline(fw[i])
        assert "burrow.worker.main" in cmdline(ew[i]), cmdline(ew[i])
        assert comm(fw[i]) == comm(ew[i]) == "burrow-worker"
        # The same open files shared with the supervisor (listeners, lifeline, handoff mesh).
        assert shared_with(fw[i], forked.proc.pid) == shared_with(ew[i], execd.proc.pid)
        assert sum(fd_targets(fw[i]).values()) == sum(fd_targets(ew[i]).values())
        assert len(os.listdir(f"/proc/{fw[i]}/task")) == len(os.listdir(f"/proc/{ew[i]}/task"))


def test_a_forked_worker_killed_is_reaped_and_replaced(burrow: Launcher) -> None:
    server = start(burrow, "server")
    victim = workers(server)[0]
    assert cmdline(victim) == cmdline(server.proc.pid)  # forked
    subprocess.run(["kill", "-KILL", str(victim)], check=True, timeout=5)
    server.wait_log(r"worker\.exited worker=0 .*SIGKILL", timeout=RESTART_TIMEOUT)
    server.wait_log(r"worker\.ready worker=0 ", timeout=RESTART_TIMEOUT, count=2)
    new = workers(server)[0]
    assert new != victim
    assert not Path(f"/proc/{victim}").exists() or victim not in children(server.proc.pid)
    assert children(server.proc.pid) == set(workers(server).values())
    assert "burrow.worker.main" in cmdline(new)  # restarts are exec'd
    assert server.alive()
