"""The default banner's commands, run as printed, against the default server (both gost forms).

The server is default.toml with its two fixed ports swapped for ephemeral ones; each printed
client and visitor command runs with only its addresses substituted (relay port, entry point,
the web server, the visitor port), and the printed curl requests must reach the web server.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from e2e.harness import BurrowProcess, Launcher, wait_for
from e2e.peers import HttpPeer, http_request
from helpers.banner import BannerCommand, banner_text, commands, curls

from burrow.supervisor import cli

UP_TIMEOUT = 8.0
WEB = "127.0.0.1:3000"
RELAY = "127.0.0.1:8443"
ENTRY = "127.0.0.1:8080"
VISITOR = "127.0.0.1:2222"


def default_server(burrow: Launcher, tmp_path: Path, handler: str) -> BurrowProcess:
    """default.toml on ephemeral ports (and, for `handler="tunnel"`, a tunnel handler)."""
    text = cli.default_config_text()
    toml = text.replace(f'"{RELAY}"', '"127.0.0.1:0"').replace(f'"{ENTRY}"', '"127.0.0.1:0"')
    toml = toml.replace('type = "relay"', f'type = "{handler}"')
    assert toml.count('"127.0.0.1:0"') == 2 and f'type = "{handler}"' in toml
    path = tmp_path / "default.toml"
    path.write_text(toml)
    return burrow.start("server", path, workers=1)


def as_run(command: BannerCommand, ports: dict[str, str]) -> list[str]:
    """The printed argv with the fixed addresses replaced by this test's."""
    out = []
    for arg in command.argv:
        for fixed, real in ports.items():
            arg = arg.replace(fixed, real)
        out.append(arg)
    assert out != command.argv
    return out


def get(address: tuple[str, int], host: str, want: bytes) -> tuple[int, bytes]:
    """GET with this Host until it answers (200, want), bounded; the printed curl line."""

    def probe() -> tuple[int, bytes] | None:
        got = http_request(address, host, timeout=2.0)
        return got if got == (200, want) else None

    return wait_for(f"{want!r} for Host {host}", probe, UP_TIMEOUT)


@pytest.mark.parametrize("handler", ["relay", "tunnel"])
def test_printed_commands_work_with_both_gost_forms(
    burrow: Launcher, tmp_path: Path, handler: str
) -> None:
    banner = banner_text()
    assert RELAY in banner and ENTRY in banner and WEB in banner and VISITOR in banner
    web = HttpPeer("app")
    try:
        server = default_server(burrow, tmp_path, handler)
        entry = server.listener("entrypoint")
        ports = {
            RELAY: server.listener("relay").address,
            ENTRY: entry.address,
            WEB: web.address,
            VISITOR: "127.0.0.1:0",
        }
        client_curl, visitor_curl = curls()
        assert visitor_curl.address == ("127.0.0.1", 2222)
        want = f"app host={client_curl.host_header}".encode()
        by_form: dict[str, list[BannerCommand]] = {}
        for command in commands():
            by_form.setdefault(command.scheme, []).append(command)
        assert sorted(by_form) == ["relay", "tunnel"]
        for scheme, (client_cmd, visitor_cmd) in sorted(by_form.items()):
            assert (client_cmd.role, visitor_cmd.role) == ("client", "visitor")
            client = burrow.start_cli(f"{scheme}-client", as_run(client_cmd, ports))
            client.wait_log(r"tunnel\.up", timeout=UP_TIMEOUT)
            server.wait_log(rf"tunnel\.up .*dialect={scheme}\b", timeout=UP_TIMEOUT)
            assert get((entry.host, entry.port), client_curl.host_header, want)[1] == want

            visitor = burrow.start_cli(f"{scheme}-visitor", as_run(visitor_cmd, ports))
            item = visitor.listener("visitor")
            assert get((item.host, item.port), visitor_curl.host_header, want)[1] == want
            # Stop this form's pair, so the next form's requests can only go through its own.
            visitor.stop()
            client.stop()
    finally:
        web.close()
