"""Shared e2e topology: a server with one tunnel client attached, and its listener addresses.

Several attack and routing tests start the same server + client pair and wait for the same
first healthy request; the steps live here so each test file only states what differs.
"""

from __future__ import annotations

from typing import Any

from e2e.harness import (
    BurrowProcess,
    Launcher,
    client_config,
    client_service,
    wait_for,
)
from e2e.peers import http_request

HEALTHY_HOST = "www.example.com"
HEALTHY_BODY = b"healthy host=www.example.com"  # what HttpPeer("healthy") answers for it


def listener_address(bp: BurrowProcess, role: str, service: str | None = None) -> tuple[str, int]:
    """(host, port) of a `role` listener (of `service`, if given) from the READY line."""
    item = bp.listener(role, service)
    return item.host, item.port


def start_with_client(
    burrow: Launcher,
    server_cfg: dict[str, Any],
    tunnel: str,
    nodes: list[dict[str, Any]],
    *,
    workers: int,
    timeout: float,
    sniffing: bool = False,
) -> tuple[BurrowProcess, BurrowProcess]:
    """Start the server, then a client publishing `nodes` on `tunnel`; return once it is up."""
    server = burrow.start("server", server_cfg, workers=workers)
    services = [client_service("s", nodes, sniffing=sniffing)]
    client = burrow.start(
        "client", client_config(server.listener("relay").address, tunnel, services)
    )
    client.wait_log(r"tunnel\.up", timeout=timeout)
    return server, client


def wait_healthy(entry: tuple[str, int], timeout: float) -> None:
    """Retry a GET for HEALTHY_HOST until HttpPeer("healthy") answers it (bounded)."""

    def probe() -> bool | None:
        got = http_request(entry, HEALTHY_HOST, timeout=2.0)
        return True if got == (200, HEALTHY_BODY) else None

    wait_for("a healthy request", probe, timeout)
