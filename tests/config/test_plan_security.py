"""Plans: per-tunnel credentials ([[tunnels]], the credentials file) and PROXY protocol keys."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from burrow.config.dump import MASK, to_toml
from burrow.config.errors import ConfigError
from burrow.config.load import load_cli
from burrow.config.notices import ConfigWarning
from burrow.config.plan import build_plans
from burrow.config.plan_types import RelayServerPlan, TunnelClientPlan
from burrow.config.summary import render_summary
from burrow.config.toml_load import load_toml

T1 = "4d21094e-b74c-4916-86c1-d9fa36ea677b"
T2 = "ac74d9dd-3125-442a-a7c1-f9e49e05faca"

SERVER = """
[[services]]
name = "server"
addr = ":8443"
handler = { type = "tunnel" }
"""


def server(text: str, warnings: list[ConfigWarning] | None = None) -> RelayServerPlan:
    (plan,) = build_plans(load_toml(SERVER + text), warnings=warnings)
    assert isinstance(plan, RelayServerPlan)
    return plan


def test_tunnels_entries_become_credentials() -> None:
    plan = server(f"""
[[tunnels]]
id = "{T1.upper()}"
bind = {{ username = "app", password = "s3cret-bind" }}
connect = {{ username = "v", password = "s3cret-visit" }}

[[tunnels]]
id = "{T2}"
bind = {{ username = "", password = "only-bind" }}

[burrow.tunnel_auth]
required = true
""")
    assert plan.tunnel_auth_required
    (a, b) = plan.tunnel_auths
    assert (a.tunnel, a.bind, a.connect) == (T1, ("app", "s3cret-bind"), ("v", "s3cret-visit"))
    assert (b.tunnel, b.bind, b.connect) == (T2, ("", "only-bind"), None)
    # Neither repr nor the check summary shows a password.
    for text in (repr(plan), render_summary([plan])):
        assert "s3cret" not in text and "only-bind" not in text
    assert "2 tunnel credentials, others refused" in render_summary([plan])


def test_convert_masks_tunnel_passwords() -> None:
    config = load_toml(SERVER + f'[[tunnels]]\nid = "{T1}"\nbind = {{ password = "hunter22" }}\n')
    out = to_toml(config)
    assert "hunter22" not in out and MASK in out and "copy them from the source" in out


def test_credentials_file(tmp_path: Path) -> None:
    path = tmp_path / "tunnels.toml"
    path.write_text(f'[[tunnels]]\nid = "{T2}"\nconnect = {{ username = "v", password = "p" }}\n')
    os.chmod(path, 0o600)
    warnings: list[ConfigWarning] = []
    plan = server(
        f'[[tunnels]]\nid = "{T1}"\nbind = {{ password = "x" }}\n'
        f'[burrow.tunnel_auth]\nfile = "{path}"\n',
        warnings,
    )
    assert [c.tunnel for c in plan.tunnel_auths] == [T1, T2]
    assert not warnings
    os.chmod(path, 0o644)
    server(f'[burrow.tunnel_auth]\nfile = "{path}"\n', warnings)
    assert any("readable by every user" in str(w) for w in warnings)


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ('[[tunnels]]\nid = "nope"\nbind = { password = "x" }\n', "tunnels[0].id", "not a UUID"),
        (f'[[tunnels]]\nid = "{T1}"\n', "tunnels[0]", "neither a bind nor a connect"),
        (
            f'[[tunnels]]\nid = "{T1}"\nbind = {{ username = "u" }}\n',
            "tunnels[0].bind.password",
            "without a password",
        ),
        (
            (
                f'[[tunnels]]\nid = "{T1}"\nbind = {{ password = "a" }}\n'
                f'[[tunnels]]\nid = "{T1}"\nconnect = {{ password = "b" }}\n'
            ),
            "tunnels[1].id",
            "two credential entries",
        ),
        (
            f'[[tunnels]]\nid = "{T1}"\nservice = "srv"\nbind = {{ password = "a" }}\n',
            "tunnels[0].service",
            "no relay/tunnel server service named 'srv'",
        ),
        (
            '[burrow.tunnel_auth]\nfile = "/nonexistent/t.toml"\n',
            "burrow.tunnel_auth.file",
            "cannot read",
        ),
    ],
)
def test_bad_credentials_name_key_and_fix(text: str, key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        server(text)
    assert info.value.key == key and problem in str(info.value) and info.value.fix


def test_bad_credentials_file_content(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text('[[tunnels]]\nid = "x"\nbogus = 1\n')
    with pytest.raises(ConfigError, match="only \\[\\[tunnels\\]\\] tables"):
        server(f'[burrow.tunnel_auth]\nfile = "{path}"\n')


def test_proxy_protocol_needs_trusted_networks() -> None:
    plan = server(
        'metadata = { proxyProtocol = 2, "proxyProtocol.trusted" = ["10.0.0.0/8", "::1"] }'
    )
    assert (plan.proxy_protocol, plan.proxy_trusted) == (2, ("10.0.0.0/8", "::1/128"))
    assert "PROXY protocol from 10.0.0.0/8, ::1/128" in render_summary([plan])
    with pytest.raises(ConfigError, match="no network is trusted") as info:
        server("metadata = { proxyProtocol = 1 }")
    assert info.value.key == "services[0].metadata.proxyprotocol"
    with pytest.raises(ConfigError, match="not an IP network"):
        server('metadata = { proxyProtocol = 1, "proxyProtocol.trusted" = ["lb.example"] }')
    with pytest.raises(ConfigError, match="not 0, 1 or 2"):
        server('metadata = { proxyProtocol = 3, "proxyProtocol.trusted" = ["::1"] }')
    assert server("metadata = { proxyProtocol = 0 }").proxy_protocol == 0


def test_proxy_protocol_on_the_command_line() -> None:
    (plan,) = build_plans(
        load_cli(["relay://:8443?proxyProtocol=1&proxyProtocol.trusted=127.0.0.1,10.0.0.0/8"], [])
    )
    assert isinstance(plan, RelayServerPlan)
    assert plan.proxy_trusted == ("127.0.0.1/32", "10.0.0.0/8")
    (client,) = build_plans(
        load_cli(
            ["rtcp://:0/127.0.0.1:80?handler.proxyProtocol=2"],
            [f"relay://127.0.0.1:8443?tunnel.id={T1}"],
        )
    )
    assert isinstance(client, TunnelClientPlan) and client.proxy_protocol == 2


def test_proxy_protocol_on_an_rudp_client_is_a_warning() -> None:
    warnings: list[ConfigWarning] = []
    (client,) = build_plans(
        load_cli(
            ["rudp://:0/127.0.0.1:53?handler.proxyProtocol=1"],
            [f"relay://127.0.0.1:8443?tunnel.id={T1}"],
        ),
        warnings=warnings,
    )
    assert isinstance(client, TunnelClientPlan) and client.proxy_protocol == 0
    assert any("TCP only" in str(w) for w in warnings)
