"""Process plumbing for the benchmark: start, wait for, measure and reliably stop child processes.

Every child runs in its own session (process group), so one ``killpg`` also takes down whatever
it forked (Burrow workers, socat's per-connection children). ``Procs`` keeps the list and stops
them all in reverse order from a ``finally``; ``leftovers`` checks with pgrep that none survived.
"""

from __future__ import annotations

import os
import re
import resource
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

TOOLS_HINT = "apt-get install -y iperf3 socat wrk"
REQUIRED_TOOLS = ("iperf3", "socat", "openssl", "pgrep")
STOP_TIMEOUT = 10.0


def missing_tools(names: tuple[str, ...] = REQUIRED_TOOLS) -> list[str]:
    """The external programs of ``names`` that are not on PATH."""
    return [n for n in names if shutil.which(n) is None]


def raise_nofile(want: int = 16384) -> int:
    """Raise the soft open-file limit (inherited by children); returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(want, hard) if hard != resource.RLIM_INFINITY else want
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft


def free_port() -> int:
    """A free loopback port for a peer that cannot bind port 0 and report it (iperf3, socat)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening_ports() -> set[int]:
    ports: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[3] == "0A":  # TCP_LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def wait_listening(port: int, timeout: float = 10.0) -> None:
    """Wait until something listens on TCP ``port`` (no probe connection, so no side effects)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port in _listening_ports():
            return
        time.sleep(0.02)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


def wait_log(path: Path, needle: str, count: int = 1, timeout: float = 15.0) -> None:
    """Wait until ``needle`` occurs ``count`` times in the log file ``path``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.read_text(errors="replace").count(needle) >= count:
            return
        time.sleep(0.05)
    raise RuntimeError(f"{needle!r} x{count} not in {path}: {path.read_text()[-2000:]}")


class Proc:
    """A child process in its own process group, stderr to a log file, stdout piped."""

    def __init__(self, args: list[str], log: Path, stdin_pipe: bool = False) -> None:
        self.args = args
        self.log = log
        self.fh = open(log, "w")  # noqa: SIM115 - open for the life of the process
        self.p = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=self.fh, start_new_session=True,
            stdin=subprocess.PIPE if stdin_pipe else subprocess.DEVNULL,
        )  # fmt: skip
        self.pgid = self.p.pid
        self.out = b""

    def ready(self, prefix: str = "READY", timeout: float = 30.0) -> dict[str, str]:
        """Fields ``k=v`` of the first stdout line starting with ``prefix``."""
        assert self.p.stdout is not None
        fd = self.p.stdout.fileno()
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            while b"\n" in self.out:
                raw, _, self.out = self.out.partition(b"\n")
                line = raw.decode(errors="replace")
                if line.startswith(prefix):
                    return dict(re.findall(r"(\S+?)=(\S+)", line))
            if not select.select([fd], [], [], left)[0]:
                break
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            self.out += chunk
        self.fh.flush()
        raise RuntimeError(
            f"{self.args[:4]}: no {prefix} line in {timeout} s, exit="
            f"{self.p.poll()}; log tail:\n{self.log.read_text()[-2000:]}"
        )

    def pids(self) -> list[int]:
        """Every live process of this group (the supervisor and its workers, socat children)."""
        out = subprocess.run(
            ["pgrep", "-g", str(self.pgid)], capture_output=True, text=True, timeout=10, check=False
        )
        return [int(x) for x in out.stdout.split()]

    def memory_mb(self) -> tuple[float, float]:
        """(RSS sum, PSS sum) in MB over the group; PSS splits shared pages between sharers."""
        rss = pss = 0
        for pid in self.pids():
            try:
                text = Path(f"/proc/{pid}/smaps_rollup").read_text()
            except OSError:
                continue
            for line in text.splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1])
        return rss / 1024, pss / 1024

    def stop(self) -> None:
        """SIGTERM the whole group, SIGKILL it after STOP_TIMEOUT; never raises."""
        for sig, wait in ((signal.SIGTERM, STOP_TIMEOUT), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.pgid, sig)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                self.p.wait(wait)
            except subprocess.TimeoutExpired:
                continue
            # The leader is gone; stragglers of the group (socat children) still get the signal.
            deadline = time.monotonic() + 2.0
            while self.pids() and time.monotonic() < deadline:
                time.sleep(0.05)
            if not self.pids():
                break
        for f in (self.p.stdout, self.p.stdin, self.fh):
            if f is not None:
                f.close()


class Procs:
    """All children of one run, stopped in reverse start order."""

    def __init__(self) -> None:
        self.started: list[Proc] = []
        self.pgids: list[int] = []

    def start(self, args: list[str], log: Path, stdin_pipe: bool = False) -> Proc:
        """Start ``args`` as a tracked child."""
        proc = Proc(args, log, stdin_pipe)
        self.started.append(proc)
        self.pgids.append(proc.pgid)
        return proc

    def burrow(self, args: list[str], log: Path) -> Proc:
        """Start ``python3 -m burrow.supervisor ARGS``."""
        return self.start([sys.executable, "-m", "burrow.supervisor", *args], log)

    def stop(self, proc: Proc) -> None:
        """Stop one child early (e.g. a topology at the end of its worker count)."""
        proc.stop()
        if proc in self.started:
            self.started.remove(proc)

    def stop_all(self) -> None:
        """Stop every child still running; never raises."""
        while self.started:
            self.started.pop().stop()

    def leftovers(self, tag: str) -> list[str]:
        """``pid cmdline`` of any process of our groups or whose command line contains ``tag``."""
        found: dict[int, str] = {}
        for pgid in self.pgids:
            out = subprocess.run(
                ["pgrep", "-a", "-g", str(pgid)],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
            found.update(_parse_pgrep(out.stdout))
        out = subprocess.run(
            ["pgrep", "-a", "-f", tag], capture_output=True, text=True, timeout=10, check=False
        )
        found.update(_parse_pgrep(out.stdout))
        found.pop(os.getpid(), None)
        return [f"{pid} {cmd}" for pid, cmd in sorted(found.items())]


def _parse_pgrep(text: str) -> dict[int, str]:
    rows: dict[int, str] = {}
    for line in text.splitlines():
        pid, _, cmd = line.partition(" ")
        if pid.isdigit() and "pgrep" not in cmd:
            rows[int(pid)] = cmd
    return rows
