"""The default banner's example commands parse with Burrow's gost CLI parser, both generations."""

from __future__ import annotations

import pytest
from helpers.banner import BannerCommand, commands, curls

from burrow.common.exitcodes import ExitCode
from burrow.config.toml_load import load_toml
from burrow.supervisor import cli

DEFAULT = load_toml(cli.default_config_text())
TUNNEL = DEFAULT.ingresses[0].rules[0].endpoint
RELAY_PORT = "127.0.0.1:8443"


def test_banner_lists_a_client_and_a_visitor_for_each_gost_generation() -> None:
    got = [(c.program, c.role, c.scheme) for c in commands()]
    assert got == [
        ("burrow", "client", "relay"),
        ("burrow", "visitor", "relay"),
        ("gost", "client", "tunnel"),
        ("gost", "visitor", "tunnel"),
    ]
    # The gost 3.x lines are the burrow lines with only the -F scheme changed.
    burrow_lines, gost_lines = commands()[:2], commands()[2:]
    for ours, theirs in zip(burrow_lines, gost_lines, strict=True):
        assert [a.replace("relay://", "tunnel://") for a in ours.argv] == theirs.argv
    text = cli._default_hint(cli.default_config_text())
    assert 'gost 3.x (v3.0.0 and later): use -F "tunnel://..."' in text
    assert [c.host_header for c in curls()] == ["app.localhost", "app.localhost"]


@pytest.mark.parametrize("command", commands(), ids=lambda c: f"{c.program}-{c.role}-{c.scheme}")
def test_banner_command_passes_burrow_check(
    command: BannerCommand, capsys: pytest.CaptureFixture[str]
) -> None:
    # `burrow check --strict`: no error and no warning (an unread key would be one).
    assert cli.main(["check", "--strict", *command.argv]) == ExitCode.OK
    out = capsys.readouterr().out
    kind = "tunnel client (rtcp)" if command.role == "client" else "visitor (tcp)"
    assert f"service-0: {kind}" in out
    assert f"server {RELAY_PORT} ({command.scheme})" in out
    assert f"tunnel {TUNNEL}" in out


def test_banner_points_at_the_default_server() -> None:
    (service,) = DEFAULT.services
    assert service.addr == RELAY_PORT
    entry = str(service.handler.metadata["entrypoint"])
    client_curl, visitor_curl = curls()
    assert f"{client_curl.address[0]}:{client_curl.address[1]}" == entry
    visitor = next(c for c in commands() if c.role == "visitor")
    listen = visitor.argv[visitor.argv.index("-L") + 1]
    assert listen.startswith(f"tcp://{visitor_curl.address[0]}:{visitor_curl.address[1]}/")
