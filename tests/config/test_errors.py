"""ConfigError texts, checked literally: file, line, key path, problem and fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from burrow.config.errors import ConfigError
from burrow.config.gost_yaml import load_json, load_yaml
from burrow.config.load import load, load_file, load_file_with_lines
from burrow.config.plan import build_plans
from burrow.config.toml_load import load_toml

T1 = "4d21094e-b74c-4916-86c1-d9fa36ea677b"

SERVER_TOML = """\
[[services]]
name = "server"
addr = ":8443"
[services.handler]
type = "relay"
"""

CLIENT_YAML = f"""\
services:
- name: client
  addr: :0
  handler:
    type: rtcp
  listener:
    type: rtcp
    chain: chain-0
  forwarder:
    nodes:
    - name: web
      addr: 127.0.0.1:80
chains:
- name: chain-0
  hops:
  - name: hop-0
    nodes:
    - name: node-0
      addr: :8443
      connector:
        type: relay
        metadata:
          tunnelID: {T1}
"""


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def error_of(fn: object, *args: object) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        fn(*args)  # type: ignore[operator]
    return info.value


def plan_error(config_text: str, tmp_path: Path, name: str = "c.yaml") -> ConfigError:
    """The plan error for a file, with its line looked up as `burrow check` does."""
    path = write(tmp_path, name, config_text)
    config, lookup = load_file_with_lines(path)
    err = error_of(lambda: build_plans(config, source=path))
    err.line = lookup(err.key)
    return err


def test_rendering() -> None:
    err = ConfigError("bad", fix="do x", key="a.b", file="f.toml", line=3)
    assert str(err) == "f.toml:3: a.b: bad (fix: do x)"
    assert str(ConfigError("bad", fix="do x")) == "bad (fix: do x)"
    assert str(ConfigError("bad", fix="do x", key="k", line=2)) == "line 2: k: bad (fix: do x)"


def test_toml_unknown_key_names_file_line_key_and_fix(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "bad.toml",
        SERVER_TOML.replace('addr = ":8443"\n', 'addr = ":8443"\nlisten = ":1"\n'),
    )
    err = error_of(load_file, path)
    assert str(err) == (
        f"{path}:4: services[0].listen: unknown key 'listen' (did you mean 'listener'?) "
        "(fix: rename it to listener; keys here: name, addr, handler, listener, forwarder, "
        "metadata)"
    )


def test_toml_unknown_key_in_nested_table_has_its_line(tmp_path: Path) -> None:
    text = (
        SERVER_TOML
        + '[[ingresses]]\nname = "i"\n[[ingresses.rules]]\nhostname = "a"\nendpoints = "b"\n'
    )
    err = error_of(load_file, write(tmp_path, "x.toml", text))
    assert (err.key, err.line) == ("ingresses[0].rules[0].endpoints", 10)
    assert err.fix == "rename it to endpoint; keys here: hostname, endpoint"


def test_toml_is_case_sensitive_for_structure_but_not_metadata() -> None:
    err = error_of(load_toml, SERVER_TOML.replace("addr", "Addr"))
    assert (err.key, err.line) == ("services[0].Addr", 3)
    config = load_toml(SERVER_TOML + '[services.handler.metadata]\nEntryPoint = ":80"\n')
    assert config.services[0].handler.metadata == {"entrypoint": ":80"}


def test_toml_type_errors() -> None:
    err = error_of(load_toml, SERVER_TOML + "[burrow]\nworkers = 0\n")
    assert (
        str(err)
        == "line 7: burrow.workers: expected int >= 1 (fix: use a whole number >= 1 and <= 1024)"
    )
    err = error_of(load_toml, SERVER_TOML + '[burrow]\nlog_format = "xml"\n')
    assert (err.key, err.problem, err.fix) == (
        "burrow.log_format",
        "invalid enum value 'xml'",
        "use one of: json, text",
    )
    err = error_of(load_toml, SERVER_TOML.replace('addr = ":8443"', "addr = 8443"))
    assert (err.key, err.problem, err.fix) == (
        "services[0].addr",
        "expected str, got int",
        "use a (quoted) string",
    )
    err = error_of(load_toml, SERVER_TOML.replace('type = "relay"', ""))
    assert (err.key, err.problem, err.fix) == (
        "services[0].handler.type",
        "required key 'type' is missing",
        "add type",
    )
    err = error_of(load_toml, "[[services]]\nname = 1\n[services.handler\n")
    assert err.problem.startswith("not valid TOML") and err.line == 3


def test_yaml_errors(tmp_path: Path) -> None:
    err = error_of(load_yaml, "services:\n- name: a\n  name: b\n")
    assert (err.key, err.line) == ("services[0].name", 3)
    assert (
        err.problem
        == "key 'name' is given twice in one mapping (first on line 2); gost refuses this too"
    )
    err = error_of(load_yaml, "services: [\n")
    assert err.problem.startswith("not valid YAML") and err.line == 2
    err = error_of(load_yaml, "- a\n")
    assert err.problem == "the top level is not a mapping"
    err = error_of(
        load_yaml,
        "services:\n- name: a\n  handler: {type: relay,"
        " metadata: {entryPoint: ':80', ENTRYPOINT: ':81'}}\n",
    )
    assert err.key == "services[0].handler.metadata.entrypoint"
    assert "given twice (keys are case-insensitive)" in err.problem
    err = error_of(load_yaml, "services:\n- name: a\n  handler:\n    type: relay\n  addr: [1]\n")
    assert (err.key, err.line, err.problem) == ("services[0].addr", 5, "expected str, got array")
    err = error_of(load_yaml, "services:\n- handler: {type: relay}\n")
    assert (err.key, err.line) == ("services[0].name", 2)
    err = error_of(load_json, '{"services": [], "services": []}')
    assert (err.key, err.problem) == ("services", "key 'services' is given twice in one object")


def test_file_errors(tmp_path: Path) -> None:
    err = error_of(load_file, str(tmp_path / "missing.yaml"))
    assert err.problem == "cannot read the file: No such file or directory"
    err = error_of(load_file, write(tmp_path, "c.ini", "x"))
    assert err.fix == "name it .toml (Burrow) or .yaml, .yml, .json (gost)"
    (tmp_path / "b.yaml").write_bytes(b"\xff\xfe")
    assert error_of(load_file, str(tmp_path / "b.yaml")).problem == "not UTF-8 text (byte 0)"


def test_bad_tunnel_id(tmp_path: Path) -> None:
    err = plan_error(CLIENT_YAML.replace(T1, "4d21094e-b74c"), tmp_path)
    assert err.key == "chains[0].hops[0].nodes[0].connector.metadata.tunnelid"
    assert err.problem == "'4d21094e-b74c' is not a UUID"
    assert err.line == 23 and err.file is not None and err.file.endswith("c.yaml")
    err = plan_error(CLIENT_YAML.replace(T1, "00000000-0000-0000-0000-000000000000"), tmp_path)
    assert err.problem == "the all-zero tunnel ID is not a tunnel"
    err = plan_error(CLIENT_YAML.replace(f"tunnelID: {T1}", "nodelay: true"), tmp_path)
    assert err.key == "chains[0].hops[0].nodes[0].connector.metadata"
    assert err.fix == "add tunnelID: <uuid> to the connector metadata (-F ...?tunnel.id=<uuid>)"


def test_bad_port(tmp_path: Path) -> None:
    err = plan_error(CLIENT_YAML.replace("127.0.0.1:80", "127.0.0.1:99999"), tmp_path)
    assert err.key == "services[0].forwarder.nodes[0].addr"
    assert err.problem == "port '99999' is not a number from 0 to 65535"
    err = plan_error(CLIENT_YAML.replace("addr: :8443", "addr: server"), tmp_path)
    assert (err.key, err.problem) == (
        "chains[0].hops[0].nodes[0].addr",
        "address 'server' has no port",
    )
    err = error_of(lambda: build_plans(load_toml(SERVER_TOML.replace(":8443", "::1:8443"))))
    assert (err.key, err.problem) == ("services[0].addr", "IPv6 address '::1:8443' needs brackets")
    assert err.fix == "write IPv6 addresses in brackets: [::1]:8443"


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("addr: :8443", "addr: '::1:8443'", "chains[0].hops[0].nodes[0].addr"),
        ("127.0.0.1:80", "'[::1:80'", "services[0].forwarder.nodes[0].addr"),
        ("127.0.0.1:80", "'[::1]80'", "services[0].forwarder.nodes[0].addr"),
    ],
)
def test_malformed_ipv6_names_file_key_and_fix(
    old: str, new: str, key: str, tmp_path: Path
) -> None:
    err = plan_error(CLIENT_YAML.replace(old, new), tmp_path)
    assert err.key == key and err.file is not None and err.file.endswith("c.yaml")
    assert err.fix == "write IPv6 addresses in brackets: [::1]:8443"
    assert "c.yaml" in str(err) and key in str(err) and "[::1]:8443" in str(err)


def test_unknown_handler_names_service(tmp_path: Path) -> None:
    err = error_of(
        lambda: build_plans(load_toml(SERVER_TOML.replace('"relay"', '"socks5"')), source="s.toml")
    )
    assert str(err) == (
        "s.toml: services[0].handler.type: service 'server' has handler type 'socks5'; "
        "Burrow only runs "
        "tunnel roles (fix: use one of: relay, tunnel, rtcp, rudp, tcp, udp (or run gost for it))"
    )


def test_missing_references(tmp_path: Path) -> None:
    err = plan_error(CLIENT_YAML.replace("chain: chain-0", "chain: chain-9"), tmp_path)
    assert (err.key, err.line) == ("services[0].listener.chain", 8)
    assert (err.problem, err.fix) == (
        "no chain named 'chain-9'",
        "define it under chains or fix the name (known: chain-0)",
    )
    err = error_of(
        lambda: build_plans(
            load_toml(SERVER_TOML + '[services.handler.metadata]\ningress = "nope"\n')
        )
    )
    assert (err.key, err.problem) == (
        "services[0].handler.metadata.ingress",
        "no ingress named 'nope'",
    )
    err = error_of(lambda: build_plans(load_toml(SERVER_TOML + 'auther = "users"\n')))
    assert (err.key, err.problem) == ("services[0].handler.auther", "no auther named 'users'")


def test_duplicate_service_names(tmp_path: Path) -> None:
    err = error_of(
        lambda: build_plans(load_toml(SERVER_TOML + SERVER_TOML.replace(":8443", ":9443")))
    )
    assert (err.key, err.problem) == (
        "services[1].name",
        "service name 'server' is used twice (also services[0])",
    )
    assert err.fix == "give each service its own name"


def test_other_plan_errors(tmp_path: Path) -> None:
    err = error_of(
        lambda: build_plans(load_toml(SERVER_TOML + SERVER_TOML.replace("server", "other")))
    )
    assert (
        err.key == "services[1].addr"
        and err.problem == "tcp address :8443 is also used by 'server' (relay)"
    )
    err = plan_error(CLIENT_YAML.replace("type: relay", "type: socks5"), tmp_path)
    assert err.key == "chains[0].hops[0].nodes[0].connector.type"
    err = plan_error(CLIENT_YAML + "      dialer:\n        type: mtls\n", tmp_path)
    assert (err.key, err.problem, err.fix) == (
        "chains[0].hops[0].nodes[0].dialer.type",
        "transport 'mtls' is not supported",
        "use one of: tcp, tls, ws, wss",
    )
    err = plan_error(
        CLIENT_YAML.replace("    type: rtcp\n    chain", "    type: tcp\n    chain"), tmp_path
    )
    assert err.key == "services[0].listener.type" and err.fix == 'set listener type to "rtcp"'
    err = plan_error(
        CLIENT_YAML.split("  forwarder:")[0] + CLIENT_YAML.split("      addr: 127.0.0.1:80\n")[1],
        tmp_path,
    )
    assert err.key == "services[0].forwarder"
    err = error_of(lambda: build_plans(load_toml("")))
    assert err.problem == "there are no services"
    err = error_of(
        lambda: build_plans(
            load_toml(SERVER_TOML + '[services.handler.metadata]\n"mux.version" = 3\n')
        )
    )
    assert err.key == "services[0].handler.metadata.mux.version"
    err = error_of(
        lambda: build_plans(
            load_toml(SERVER_TOML + '[services.handler.metadata]\nreadTimeout = "5x"\n')
        )
    )
    assert err.key == "services[0].handler.metadata.readtimeout"
    assert err.fix == 'use a duration such as "10s", "300ms" or 15'


def test_cli_errors() -> None:
    err = error_of(load, None, [], [])
    assert err.problem == "nothing to run"
    err = error_of(load, None, ["relay://:8443?auth=!!"], [])
    assert (err.key, err.file) == ("-L[0].auth", "command line")
    err = error_of(load, None, [], ["relay://:8443"])
    assert err.key == "-F[0]"
    err = error_of(load, None, ["tcp://[::1/x"], [])
    assert err.key == "-L[0]" and err.problem.startswith("cannot parse")
    assert err.fix == "write IPv6 addresses in brackets: [::1]:8443"
    cli = load(None, ["rtcp://:0/[::1]:80"], ["relay://::1:8443?tunnel.id=" + T1])
    err = error_of(lambda: build_plans(cli, source="command line"))
    assert (err.file, err.key) == ("command line", "chains[0].hops[0].nodes[0].addr")
    assert err.problem == "IPv6 address '::1:8443' needs brackets"
