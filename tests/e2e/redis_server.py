"""A real redis-server for the cluster tests, on a unix socket of its own (no port to race for).

Redis has no "port 0", so the server listens only on a socket in a fresh /tmp directory (short
enough for sun_path); ``url`` is what ``[burrow.cluster] redis`` takes. :meth:`stop` and
:meth:`start` let a test take the store away and bring it back on the same address.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import redis
from e2e.harness import wait_for

START_TIMEOUT = 10.0


class RedisServer:
    """One redis-server process (persistence off); stopped by :meth:`close`."""

    def __init__(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server is not installed (.ci/run installs it)")
        self.exe = exe
        self.dir = Path(tempfile.mkdtemp(prefix="burrow-redis-", dir="/tmp"))
        self.socket_path = self.dir / "redis.sock"
        self.log_path = self.dir / "redis.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        """The ``[burrow.cluster] redis`` URL of this server."""
        return f"unix://{self.socket_path}"

    def start(self) -> None:
        """Start (or restart) the server on the same socket; returns once it answers PING."""
        if self.proc is not None and self.proc.poll() is None:
            return
        cmd = [
            self.exe, "--port", "0", "--unixsocket", str(self.socket_path),
            "--unixsocketperm", "700", "--save", "", "--appendonly", "no",
            "--dir", str(self.dir), "--logfile", str(self.log_path),
        ]  # fmt: skip
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, start_new_session=True)

        def answers() -> bool | None:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited: {self.log_path.read_text()}")
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(1.0)
                s.connect(str(self.socket_path))
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG") or None

        wait_for("redis-server to answer PING", answers, START_TIMEOUT)

    def stop(self) -> None:
        """Stop the server (SIGKILL: an outage, not a shutdown); data is gone, like a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(START_TIMEOUT)
        self.socket_path.unlink(missing_ok=True)

    def client(self) -> redis.Redis:
        """A synchronous client, for tests that look at (or plant) what is stored."""
        return redis.Redis(unix_socket_path=str(self.socket_path), decode_responses=True)

    def close(self) -> None:
        """Stop the server and remove its directory."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
