"""Run real `burrow` processes for end-to-end tests: start, wait for READY, read logs, stop.

A process runs `python3 -m burrow.supervisor -C <file>` in its own session (so teardown can
signal the whole group: supervisor and workers), stdout and stderr go to files under tmp_path.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from burrow.common.hostport import join_host_port, unbracket

REPO = Path(__file__).resolve().parents[2]
SOURCE_ROOTS = [REPO / "shared", REPO / "worker", REPO / "supervisor"]
READY_TIMEOUT = 15.0
STOP_GRACE = 5.0
POLL = 0.05
TOKEN = re.compile(
    r"^(?P<service>[^/=]+)/(?P<role>[^=]+)=(?P<host>.+):(?P<port>\d+)(?P<udp>/udp)?$"
)

T = TypeVar("T")


@dataclass(frozen=True)
class Listener:
    """One `service/role=host:port[/udp]` token of the READY line (host without brackets)."""

    service: str
    role: str
    host: str
    port: int
    udp: bool

    @property
    def address(self) -> str:
        """`host:port` (`[::1]:port` for IPv6) for config files and clients."""
        return join_host_port(self.host, self.port)


def parse_ready(line: str) -> tuple[int, list[Listener]]:
    """(worker count, listeners) of a READY line; ValueError when the line is not one."""
    parts = line.split()
    if not parts or parts[0] != "READY" or len(parts) < 2 or not parts[1].startswith("workers="):
        raise ValueError(f"not a READY line: {line!r}")
    workers = int(parts[1].removeprefix("workers="))
    out = []
    for tok in parts[2:]:
        m = TOKEN.match(tok)
        if m is None:
            raise ValueError(f"bad READY token {tok!r}")
        out.append(
            # host without brackets, so (host, port) is a socket address
            Listener(
                m["service"], m["role"], unbracket(m["host"]), int(m["port"]), m["udp"] is not None
            )
        )
    return workers, out


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, step: float = POLL) -> T:
    """Call `probe` until it returns something not None (exceptions count as 'not yet'); bounded."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            got = probe()
            if got is not None:
                return got
        except Exception as exc:  # noqa: BLE001 - any failure of the probe means "not yet"
            last = exc
        if time.monotonic() >= deadline:
            raise TimeoutError(
                f"timed out after {timeout:.1f}s waiting for {what}; last error: {last!r}"
            )
        time.sleep(step)


@dataclass
class BurrowProcess:
    """A running `burrow` supervisor (and its workers) with captured output."""

    name: str
    proc: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path
    workers: int = 0
    listeners: list[Listener] = field(default_factory=list)

    def stdout(self) -> str:
        """Everything written to stdout so far."""
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        """Everything written to stderr so far (the log)."""
        return self.stderr_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Block until the READY line appears (or the process exits / the deadline passes)."""

        def probe() -> str | None:
            for line in self.stdout().splitlines():
                if line.startswith("READY "):
                    return line
            if self.proc.poll() is not None:
                raise ProcessExited(f"{self.name} exited with {self.proc.returncode} before READY")
            return None

        try:
            line = wait_for(f"READY from {self.name}", probe, timeout)
        except TimeoutError as exc:
            if self.proc.poll() is not None:
                raise ProcessExited(
                    f"{self.name} exited with {self.proc.returncode} before READY:\n{self.stderr()}"
                ) from exc
            raise
        self.workers, self.listeners = parse_ready(line)

    def listener(self, role: str, service: str | None = None, *, udp: bool = False) -> Listener:
        """The single listener with this role (and service, and network)."""
        found = [
            item
            for item in self.listeners
            if item.role == role
            and item.udp == udp
            and (service is None or item.service == service)
        ]
        if len(found) != 1:
            raise LookupError(
                f"{self.name}: want one {service}/{role} udp={udp}, have {self.listeners}"
            )
        return found[0]

    def wait_log(self, pattern: str, timeout: float = 10.0, count: int = 1) -> str:
        """Wait for `count` log lines matching the regex; return the last one."""
        rx = re.compile(pattern)

        def probe() -> str | None:
            hits = [line for line in self.stderr().splitlines() if rx.search(line)]
            if len(hits) >= count:
                return hits[-1]
            if self.proc.poll() is not None:
                raise ProcessExited(f"{self.name} exited with {self.proc.returncode}")
            return None

        return wait_for(f"{pattern!r} in {self.name}'s log", probe, timeout)

    def alive(self) -> bool:
        """True while the supervisor runs."""
        return self.proc.poll() is None

    def stop(self, grace: float = STOP_GRACE) -> int:
        """SIGTERM the process group, wait up to `grace`, then SIGKILL it; return the exit code."""
        if self.proc.poll() is None:
            _signal_group(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                _signal_group(self.proc.pid, signal.SIGKILL)
                self.proc.wait(grace)
        # Workers share the group; make sure none outlives its supervisor.
        _signal_group(self.proc.pid, signal.SIGKILL)
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL the whole group at once (a crashed client host)."""
        _signal_group(self.proc.pid, signal.SIGKILL)
        self.proc.wait(STOP_GRACE)


class ProcessExited(RuntimeError):
    """The burrow process ended when it should still be running."""


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def subprocess_env() -> dict[str, str]:
    """Environment for a burrow child: the three source roots on PYTHONPATH."""
    env = dict(os.environ)
    roots = [str(p) for p in SOURCE_ROOTS]
    if env.get("PYTHONPATH"):
        roots.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(roots)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Launcher:
    """Starts burrow processes for one test and stops them all at teardown."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.started: list[BurrowProcess] = []

    def write_yaml(self, name: str, config: dict[str, Any]) -> Path:
        """Write a gost YAML config into tmp_path."""
        path = self.tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def start(
        self,
        name: str,
        config: dict[str, Any] | Path,
        *,
        workers: int = 1,
        debug: bool = False,
        wait: bool = True,
        args: list[str] | None = None,
    ) -> BurrowProcess:
        """Start `burrow -C <config> --workers N` and (by default) wait for its READY line."""
        path = config if isinstance(config, Path) else self.write_yaml(name, config)
        cmd = ["-C", str(path), "--workers", str(workers)]
        if debug:
            cmd.append("-D")
        return self.start_cli(name, cmd + (args or []), wait=wait)

    def start_cli(
        self,
        name: str,
        argv: list[str],
        *,
        wait: bool = True,
        env: dict[str, str] | None = None,
    ) -> BurrowProcess:
        """Start `burrow <argv>` as typed on a command line (`-L ... -F ...`, no -C needed).

        ``env`` adds to the environment (e.g. NOTIFY_SOCKET).
        """
        bp = self.spawn(name, [sys.executable, "-m", "burrow.supervisor", *argv], env)
        if wait:
            bp.wait_ready()
        return bp

    def spawn(self, name: str, cmd: list[str], env: dict[str, str] | None = None) -> BurrowProcess:
        """Start ``cmd`` (a burrow command, perhaps behind a wrapper) in its own session, output
        captured in tmp_path, stopped at teardown; no waiting."""
        out = self.tmp_path / f"{name}.stdout"
        err = self.tmp_path / f"{name}.stderr"
        with out.open("wb") as fo, err.open("wb") as fe:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=fo,
                stderr=fe,
                env={**subprocess_env(), **(env or {})},
                cwd=self.tmp_path,
                start_new_session=True,
            )
        bp = BurrowProcess(name, proc, out, err)
        self.started.append(bp)
        return bp

    def stop_all(self) -> None:
        """Stop every process this launcher started (clients first, servers last)."""
        for bp in reversed(self.started):
            bp.stop()

    def report(self) -> str:
        """Captured output of every process, for a failed test."""
        parts = []
        for bp in self.started:
            parts.append(
                f"----- {bp.name} (pid {bp.proc.pid}, rc {bp.proc.returncode}) stdout -----\n"
                f"{bp.stdout()}\n----- {bp.name} stderr -----\n{bp.stderr()}"
            )
        return "\n".join(parts)


# ---- gost YAML builders (the seed's shapes, moved to 127.0.0.1 and port 0) ----


def server_config(
    rules: list[tuple[str, str]],
    *,
    dialect: str = "relay",
    entrypoint: bool = True,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Seed 01/04/11: a relay (or tunnel) handler on 127.0.0.1:0 with an ingress and entry point."""
    md: dict[str, Any] = {"ingress": "ingress-0"}
    if entrypoint:
        md["entryPoint" if dialect == "relay" else "entrypoint"] = "127.0.0.1:0"
    md.update(metadata or {})
    return {
        "services": [
            {
                "name": "service-0",
                "addr": "127.0.0.1:0",
                "handler": {"type": dialect, "metadata": md},
                "listener": {"type": "tcp"},
            }
        ],
        "ingresses": [
            {"name": "ingress-0", "rules": [{"hostname": h, "endpoint": e} for h, e in rules]}
        ],
    }


def _chain(server: str, tunnel_id: str, dialect: str) -> dict[str, Any]:
    key = "tunnelID" if dialect == "relay" else "tunnel.id"
    return {
        "name": "chain-0",
        "hops": [
            {
                "name": "hop-0",
                "nodes": [
                    {
                        "name": "node-0",
                        "addr": server,
                        "connector": {"type": dialect, "metadata": {key: tunnel_id}},
                        "dialer": {"type": "tcp"},
                    }
                ],
            }
        ],
    }


def forward_node(name: str, addr: str, host: str | None = None) -> dict[str, Any]:
    """A forwarder node; `host` is the client-side routing key (seed 03/07/09)."""
    node: dict[str, Any] = {"name": name, "addr": addr}
    if host is not None:
        node["host"] = host
    return node


def client_service(
    name: str, nodes: list[dict[str, Any]], *, udp: bool = False, sniffing: bool = False
) -> dict[str, Any]:
    """An rtcp (or rudp) tunnel-client service over chain-0 (seed 02/03/05/07/09/12)."""
    kind = "rudp" if udp else "rtcp"
    handler: dict[str, Any] = {"type": kind}
    if sniffing:
        handler["metadata"] = {"sniffing": True}
    return {
        "name": name,
        "addr": ":0",
        "handler": handler,
        "listener": {"type": kind, "chain": "chain-0"},
        "forwarder": {"nodes": nodes},
    }


def client_config(
    server: str, tunnel_id: str, services: list[dict[str, Any]], *, dialect: str = "relay"
) -> dict[str, Any]:
    """A tunnel client config: `services` over one chain to the server's relay port."""
    return {"services": services, "chains": [_chain(server, tunnel_id, dialect)]}


def visitor_service(
    name: str,
    *,
    target: str | None = None,
    udp: bool = False,
    sniffing: bool = False,
    keepalive: bool = False,
    nodelay: bool = False,
) -> dict[str, Any]:
    """A local tcp/udp visitor on 127.0.0.1:0 over chain-0 (seed 06/08/10/13)."""
    kind = "udp" if udp else "tcp"
    handler: dict[str, Any] = {"type": kind, "chain": "chain-0"}
    md: dict[str, Any] = {}
    if sniffing:
        md["sniffing"] = True
    if md:
        handler["metadata"] = md
    listener: dict[str, Any] = {"type": kind}
    if keepalive:
        listener["metadata"] = {"keepalive": True}
    svc: dict[str, Any] = {
        "name": name,
        "addr": "127.0.0.1:0",
        "handler": handler,
        "listener": listener,
    }
    if target is not None:
        svc["forwarder"] = {"nodes": [{"name": "target-0", "addr": target}]}
    if nodelay:
        svc["_nodelay"] = True
    return svc


def visitor_config(
    server: str, tunnel_id: str, services: list[dict[str, Any]], *, dialect: str = "relay"
) -> dict[str, Any]:
    """A visitor config; a service marked nodelay gets it on the chain's connector."""
    chain = _chain(server, tunnel_id, dialect)
    if any(svc.pop("_nodelay", False) for svc in services):
        chain["hops"][0]["nodes"][0]["connector"]["metadata"]["nodelay"] = True
    return {"services": services, "chains": [chain]}
