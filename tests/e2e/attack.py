"""Helpers for the attack tests: TOML configs with [burrow.limits], a healthy-traffic loop."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from e2e.harness import Launcher, subprocess_env, wait_for
from e2e.peers import http_request

WEB_HOST = "web.example.com"


def with_limits(burrow: Launcher, name: str, config: dict[str, Any], **limits: Any) -> Path:
    """The gost YAML ``config`` as Burrow TOML with ``[burrow.limits]`` set to ``limits``."""
    yaml_path = burrow.write_yaml(f"{name}-src", config)
    out = subprocess.run(
        [sys.executable, "-m", "burrow.supervisor", "convert", "-C", str(yaml_path)],
        check=True,
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=30,
    ).stdout
    lines = [line for line in out.splitlines() if line.strip() != "[burrow.limits]"]
    lines.append("\n[burrow.limits]")
    for key, value in limits.items():
        lines.append(f"{key} = {value!r}" if not isinstance(value, str) else f'{key} = "{value}"')
    path = burrow.tmp_path / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def with_auth(config: dict[str, Any], user: str, password: str) -> dict[str, Any]:
    """A client config whose connector sends these credentials."""
    node = config["chains"][0]["hops"][0]["nodes"][0]
    node["connector"]["auth"] = {"username": user, "password": password}
    return config


def server_auth(config: dict[str, Any], user: str, password: str) -> dict[str, Any]:
    """A server config whose relay handler requires these credentials."""
    config["services"][0]["handler"]["auth"] = {"username": user, "password": password}
    return config


class Healthy:
    """Threads sending GETs through the entry point (fresh connection each) until stopped.

    A request counts as OK on a 200, and when ``want`` is given only if the body equals it.
    """

    def __init__(
        self,
        entry: tuple[str, int],
        threads: int = 2,
        timeout: float = 20.0,
        *,
        host: str = WEB_HOST,
        want: bytes | None = None,
    ) -> None:
        self.entry = entry
        self.timeout = timeout
        self.host = host
        self.want = want
        self.ok = 0
        self.bodies: dict[bytes, int] = {}
        self.failures: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        for thread in self._threads:
            thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                status, body = http_request(self.entry, self.host, timeout=self.timeout)
                good = status == 200 and (self.want is None or body == self.want)
                outcome = None if good else f"{status} {body!r}"
            except OSError as exc:
                status, body, outcome = 0, b"", repr(exc)
            with self._lock:
                if outcome is None:
                    self.ok += 1
                    self.bodies[body] = self.bodies.get(body, 0) + 1
                else:
                    self.failures.append(f"{time.strftime('%H:%M:%S')} {outcome}")

    @property
    def total(self) -> int:
        return self.ok + len(self.failures)

    @property
    def rate(self) -> float:
        """Share of requests that succeeded (1.0 with none sent)."""
        return self.ok / self.total if self.total else 1.0

    def wait_more(self, count: int, timeout: float = 30.0) -> None:
        """Block until ``count`` more requests have succeeded (bounded)."""
        target = self.ok + count
        wait_for(f"{count} more OK requests", lambda: True if self.ok >= target else None, timeout)

    def stop(self) -> str:
        """Stop and return the figure as text (also printed for the test log)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.timeout + 5)
        text = (
            f"healthy {self.ok}/{self.total} = {100 * self.rate:.2f}% failures={self.failures[:3]}"
        )
        print(text)
        return text
