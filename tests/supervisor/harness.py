"""Run the supervisor driver as a real process group; talk to the tiny worker over TCP."""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MAX_ANSWER = 65536


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment whose PYTHONPATH reproduces this interpreter's import roots, plus the repo."""
    env = dict(os.environ)
    roots = [str(REPO)] + [p for p in sys.path if p and os.path.isdir(p)]
    env["PYTHONPATH"] = os.pathsep.join(roots)
    env.update(extra or {})
    return env


def wait_pid_exit(pid: int, timeout: float) -> bool:
    """True once ``pid`` has exited (pidfd, no polling), False at the deadline."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        readable, _, _ = select.select([fd], [], [], timeout)
        return bool(readable)
    finally:
        os.close(fd)


class Driver:
    """One ``tests.supervisor.driver`` process group."""

    def __init__(self, tmp: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.tmp = tmp
        self.stderr_path = tmp / f"supervisor-{time.monotonic_ns()}.log"
        self._stderr = open(self.stderr_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.supervisor.driver", "--runtime-dir", str(tmp), *args],
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            stdin=subprocess.DEVNULL,
            env=child_env(env),
            cwd=REPO,
            start_new_session=True,
        )
        self._buf = b""

    def readline(self, timeout: float) -> str | None:
        """One stdout line, or None at EOF; raises TimeoutError at the deadline."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise TimeoutError(f"no stdout line in {timeout}s; log:\n{self.log()}")
            chunk = os.read(fd, 4096)
            if not chunk:
                return None
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line.decode()

    def wait_ready(self, timeout: float = 20.0) -> dict[str, str]:
        """Parse the READY line into {"service/role": "host:port[/udp]"} (+ "workers")."""
        line = self.readline(timeout)
        assert line is not None and line.startswith("READY "), f"got {line!r}; log:\n{self.log()}"
        tokens = dict(tok.split("=", 1) for tok in line.split()[1:])
        return tokens

    def port(self, tokens: dict[str, str], key: str = "svc/entrypoint") -> int:
        """The TCP port of one READY token."""
        return int(tokens[key].rpartition(":")[2])

    def wait(self, timeout: float) -> int:
        """The exit code; raises subprocess.TimeoutExpired at the deadline."""
        return self.proc.wait(timeout)

    def signal(self, sig: int) -> None:
        """Signal the supervisor process only."""
        self.proc.send_signal(sig)

    def log(self) -> str:
        """Everything the supervisor and its workers wrote to stderr so far."""
        if not self._stderr.closed:
            self._stderr.flush()
        return self.stderr_path.read_text(errors="replace")

    def teardown(self) -> None:
        """SIGTERM the group, wait, then SIGKILL whatever is left."""
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()


def ask(port: int, timeout: float = 10.0) -> dict[str, str]:
    """One connection to the tiny worker: its answer line as a dict."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
            assert len(data) < MAX_ANSWER
    assert data.endswith(b"\n"), f"short answer {data!r}"
    return dict(tok.split("=", 1) for tok in data.decode().split())
