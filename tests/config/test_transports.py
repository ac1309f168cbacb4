"""Transport settings (tls, ws, wss) through every front door, and their config errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from burrow.config.errors import ConfigError
from burrow.config.gost_cli import load_cli
from burrow.config.load import load_file
from burrow.config.plan import build_plans
from burrow.config.plan_transport import TCP_TRANSPORT, TransportPlan
from burrow.config.plan_types import RelayServerPlan, TunnelClientPlan

T1 = "4d21094e-b74c-4916-86c1-d9fa36ea677b"


@pytest.fixture
def pems(tmp_path: Path) -> dict[str, str]:
    """Paths that exist (the plan checks existence; the worker reads the contents)."""
    out = {}
    for name in ("cert", "key", "ca"):
        path = tmp_path / f"{name}.pem"
        path.write_text("x")
        out[name] = str(path)
    return out


def _server(plans: list[object]) -> RelayServerPlan:
    plan = plans[0]
    assert isinstance(plan, RelayServerPlan)
    return plan


def _client(plans: list[object]) -> TunnelClientPlan:
    plan = plans[0]
    assert isinstance(plan, TunnelClientPlan)
    return plan


def test_cli_server_and_client(pems: dict[str, str]) -> None:
    """gost's command line: relay+tls / tunnel+wss with the TLS and WebSocket parameters."""
    url = f"relay+tls://:8443?certFile={pems['cert']}&keyFile={pems['key']}&caFile={pems['ca']}"
    server = _server(build_plans(load_cli([url + f"&tunnel=a.example:{T1}"], [])))
    assert server.transport == TransportPlan(
        kind="tls", cert_file=pems["cert"], key_file=pems["key"], ca_file=pems["ca"]
    )
    node = (
        f"tunnel+wss://relay.example:443?tunnel.id={T1}&secure=true&serverName=r.example"
        f"&path=/t&host=h.example&cert={pems['cert']}&key={pems['key']}"
    )
    client = _client(build_plans(load_cli(["rtcp://:0/127.0.0.1:80"], [node])))
    assert client.server.transport == TransportPlan(
        kind="wss", cert_file=pems["cert"], key_file=pems["key"], secure=True,
        server_name="r.example", path="/t", host="h.example",
    )  # fmt: skip
    plain = _client(
        build_plans(load_cli(["rtcp://:0/127.0.0.1:80"], [f"relay://:8443?tunnelID={T1}"]))
    )
    assert plain.server.transport == TCP_TRANSPORT


def test_yaml_and_toml(tmp_path: Path, pems: dict[str, str]) -> None:
    """listener.tls / dialer.tls and ws metadata, the same keys in gost YAML and Burrow TOML."""
    yaml_path = tmp_path / "c.yaml"
    yaml_path.write_text(f"""\
services:
- name: server
  addr: :8443
  handler: {{type: relay}}
  listener:
    type: wss
    tls: {{certFile: {pems["cert"]}, keyFile: {pems["key"]}}}
    metadata: {{path: /tunnel}}
""")
    assert _server(build_plans(load_file(yaml_path))).transport == TransportPlan(
        kind="wss", cert_file=pems["cert"], key_file=pems["key"], path="/tunnel"
    )
    toml_path = tmp_path / "c.toml"
    toml_path.write_text(f"""\
[[services]]
name = "client"
addr = ":0"
handler = {{ type = "rtcp" }}
listener = {{ type = "rtcp", chain = "chain-0" }}
forwarder = {{ nodes = [{{ name = "web", addr = "127.0.0.1:80" }}] }}

[[chains]]
name = "chain-0"
[[chains.hops]]
name = "hop-0"
[[chains.hops.nodes]]
name = "node-0"
addr = "relay.example:443"
connector = {{ type = "tunnel", metadata = {{ "tunnel.id" = "{T1}" }} }}
dialer = {{ type = "tls", tls = {{ caFile = "{pems["ca"]}", secure = true, serverName = "relay.example" }} }}
""")
    assert _client(build_plans(load_file(toml_path))).server.transport == TransportPlan(
        kind="tls", ca_file=pems["ca"], secure=True, server_name="relay.example"
    )


def _error(services: list[str], nodes: list[str]) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        build_plans(load_cli(services, nodes))
    return info.value


def test_errors_name_key_and_fix(tmp_path: Path, pems: dict[str, str]) -> None:
    """Unknown transport, a missing file, half a key pair, a bad secure: key and fix."""
    err = _error(["relay+mws://:8443"], [])
    assert (err.key, err.problem, err.fix) == (
        "services[0].listener.type", "transport 'mws' is not supported",
        "use one of: tcp, tls, ws, wss",
    )  # fmt: skip
    missing = str(tmp_path / "nope.pem")
    err = _error([f"relay+tls://:8443?certFile={missing}&keyFile={pems['key']}"], [])
    assert err.key == "services[0].listener.tls.certFile"
    assert missing in err.problem and err.fix == "give the path of a PEM file"
    err = _error([f"relay+tls://:8443?keyFile={pems['key']}"], [])
    assert (err.key, err.fix) == ("services[0].listener.tls.keyFile", "give certFile too")
    node = f"relay+tls://:8443?tunnelID={T1}&certFile={pems['cert']}"
    err = _error(["rtcp://:0/127.0.0.1:80"], [node])
    assert err.key == "chains[0].hops[0].nodes[0].dialer.tls.keyFile"
    err = _error(["rtcp://:0/127.0.0.1:80"], [f"relay+tls://:8443?tunnelID={T1}&secure=maybe"])
    assert (err.key, err.fix) == ("-F[0].secure", "use secure=true")
    err = _error(["rtcp://:0/127.0.0.1:80"], [f"relay+ws://:8443?tunnelID={T1}&path=ws"])
    assert err.key == "chains[0].hops[0].nodes[0].dialer.metadata.path"


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    """A config file's error carries its path."""
    path = tmp_path / "bad.yaml"
    path.write_text("""\
services:
- name: server
  addr: :8443
  handler: {type: relay}
  listener: {type: tls, tls: {certFile: /nonexistent/cert.pem, keyFile: /nonexistent/key.pem}}
""")
    with pytest.raises(ConfigError) as info:
        build_plans(load_file(path), source=str(path))
    assert info.value.file == str(path)
    assert info.value.key == "services[0].listener.tls.certFile"
