"""Service plans: defaults per dialect, options, ingress sources, listen specs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from burrow.common.ids import TunnelId
from burrow.config.load import load_cli
from burrow.config.metadata import parse_endpoint
from burrow.config.plan import build_plans, listen_specs
from burrow.config.plan_types import (
    DEFAULT_READ_TIMEOUT,
    MUX_DEFAULTS,
    Endpoint,
    ListenSpec,
    RelayServerPlan,
    TunnelClientPlan,
    VisitorPlan,
)
from burrow.config.toml_load import load_toml

T1 = "4d21094e-b74c-4916-86c1-d9fa36ea677b"
T2 = "ac74d9dd-3125-442a-a7c1-f9e49e05faca"


def one(services: list[str], nodes: Sequence[str] = ()) -> object:
    (plan,) = build_plans(load_cli(services, nodes))
    return plan


def test_endpoint_text_and_parsing() -> None:
    assert str(Endpoint("", 8443)) == ":8443"
    assert str(Endpoint("::1", 80)) == "[::1]:80"
    assert parse_endpoint("[::1]:80", key="k") == Endpoint("::1", 80)
    assert parse_endpoint("example.com", key="k", default_port=0) == Endpoint("example.com", 0)
    assert parse_endpoint(" 127.0.0.1:0 ", key="k") == Endpoint("127.0.0.1", 0)
    assert parse_endpoint("[::1]", key="k", default_port=0) == Endpoint("::1", 0)


def test_ipv6_literals_everywhere_an_address_is_taken() -> None:
    server = one([f"relay://[::1]:8443?entryPoint=[::1]:8080&tunnel=[::1]:{T1},app.test:{T2}"])
    assert isinstance(server, RelayServerPlan)
    assert (server.listen, server.entrypoints) == (Endpoint("::1", 8443), (Endpoint("::1", 8080),))
    assert server.ingress_rules == (("::1", T1), ("app.test", T2))
    client = one(["rtcp://:0/[::1]:3000"], [f"relay://[::1]:8443?tunnel.id={T1}"])
    assert isinstance(client, TunnelClientPlan)
    assert str(client.server.addr) == "[::1]:8443"
    assert [n.addr for n in client.nodes] == ["[::1]:3000"]
    visitor = one(["tcp://[::1]:2222/[::1]:80"], [f"tunnel://[::1]:8443?tunnel.id={T1}"])
    assert isinstance(visitor, VisitorPlan)
    assert (str(visitor.listen), [n.addr for n in visitor.targets]) == ("[::1]:2222", ["[::1]:80"])
    toml = f"""
[[services]]
name = "server"
addr = "[::1]:8443"
[services.handler]
type = "tunnel"
metadata = {{ entrypoint = "[::1]:8080", tunnel = "[::1]:{T1}" }}
"""
    (plan,) = build_plans(load_toml(toml))
    assert isinstance(plan, RelayServerPlan)
    assert (plan.listen, plan.entrypoints) == (Endpoint("::1", 8443), (Endpoint("::1", 8080),))
    assert plan.ingress_rules == (("::1", T1),)


def test_relay_server_defaults() -> None:
    plan = one([f"relay://:8443?entryPoint=:80&tunnel=.example.com:{T1},example.org:${T2},"])
    assert isinstance(plan, RelayServerPlan)
    assert (plan.listen, plan.dialect, plan.entrypoints) == (
        Endpoint("", 8443),
        "relay",
        (Endpoint("", 80),),
    )
    assert plan.ingress_rules == ((".example.com", T1), ("example.org", f"${T2}"))
    assert (
        plan.mux == MUX_DEFAULTS["relay"]
        and plan.mux.version == 1
        and plan.mux.max_stream_buffer == 65536
    )
    assert plan.mux_version_override is None
    assert (plan.read_timeout, plan.sniff_timeout) == (DEFAULT_READ_TIMEOUT, 10.0)
    assert (plan.direct, plan.nodelay, plan.proxy_enabled, plan.auths) == (False, False, False, ())


def test_tunnel_server_options() -> None:
    plan = one(
        [
            (
                "tunnel://alice:secret@127.0.0.1:9443?entrypoint=127.0.0.1:8080&tunnel.direct=true"
                "&mux.version=1&mux.keepaliveInterval=5s&readTimeout=0&nodelay=1&relay.proxy=true"
                "&sniffing.timeout=3s"
            )
        ]
    )
    assert isinstance(plan, RelayServerPlan)
    assert (plan.dialect, plan.direct, plan.auths) == ("tunnel", True, (("alice", "secret"),))
    assert plan.mux.version == 1 and plan.mux_version_override == 1
    assert plan.mux.max_stream_buffer == 1048576 and plan.mux.keepalive_interval == 5.0
    assert (plan.read_timeout, plan.nodelay, plan.proxy_enabled, plan.sniff_timeout) == (
        DEFAULT_READ_TIMEOUT,  # readTimeout=0 means the default, as in gost HEAD
        True,
        True,
        3.0,
    )


SERVER = f"""\
[[services]]
name = "srv"
addr = ":8443"
[services.handler]
type = "tunnel"
auther = "users"
[services.handler.metadata]
ingress = "main"
entrypoints = [{{ addr = ":8081", ingress = "main" }}, ":8082"]
entryPoint = ":8080"
[[ingresses]]
name = "main"
file = {{ path = "RULES" }}
[[ingresses.rules]]
hostname = "a.example"
endpoint = "{T1}"
[[authers]]
name = "users"
auths = [{{ username = "u1", password = "p1" }}, {{ username = "u2", password = "p2" }}]
"""


def test_server_ingress_file_entrypoints_and_authers(tmp_path: Path) -> None:
    rules = tmp_path / "rules.txt"
    rules.write_text(f"# comment\n*.b.example\t${T2}\nlonely\n\nc.example {T1} # trailing\n")
    (plan,) = build_plans(load_toml(SERVER.replace("RULES", str(rules))))
    assert isinstance(plan, RelayServerPlan)
    assert plan.entrypoints == (Endpoint("", 8080), Endpoint("", 8081), Endpoint("", 8082))
    assert plan.ingress_rules == (("a.example", T1), ("*.b.example", f"${T2}"), ("c.example", T1))
    assert plan.auths == (("u1", "p1"), ("u2", "p2"))
    assert listen_specs([plan]) == [
        ListenSpec("srv", "relay", "tcp", Endpoint("", 8443)),
        ListenSpec("srv", "entrypoint", "tcp", Endpoint("", 8080)),
        ListenSpec("srv", "entrypoint", "tcp", Endpoint("", 8081)),
        ListenSpec("srv", "entrypoint", "tcp", Endpoint("", 8082)),
    ]


def test_bad_ingress_file_entry_is_an_error(tmp_path: Path) -> None:
    rules = tmp_path / "rules.txt"
    rules.write_text("ok.example not-a-uuid\n")
    from burrow.config.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        build_plans(load_toml(SERVER.replace("RULES", str(rules))))
    assert info.value.key == "ingresses[0].file.path (line 1)"
    with pytest.raises(ConfigError) as info:
        build_plans(load_toml(SERVER.replace("RULES", str(tmp_path / "absent"))))
    assert info.value.key == "ingresses[0].file.path"


def test_client_plan() -> None:
    plan = one(
        ["rtcp://:0/192.168.1.1:80,:5201?sniffing=true&sniffing.timeout=2s"],
        [f"relay://bob:pw@example.net:8443?tunnelID={T1}&nodelay=true&connectTimeout=4s"],
    )
    assert isinstance(plan, TunnelClientPlan)
    assert (plan.network, plan.tunnel_id, plan.sniffing, plan.sniffing_timeout) == (
        "tcp",
        TunnelId.parse(T1),
        True,
        2.0,
    )
    assert [(n.name, n.addr, n.network) for n in plan.nodes] == [
        ("target-0", "192.168.1.1:80", "tcp"),
        ("target-1", ":5201", "tcp"),
    ]
    server = plan.server
    assert (
        server.addr,
        server.dialect,
        server.auth,
        server.nodelay,
        server.connect_timeout,
        server.dialer,
    ) == (Endpoint("example.net", 8443), "relay", ("bob", "pw"), True, 4.0, "tcp")
    assert server.mux == MUX_DEFAULTS["relay"] and server.weight == 0
    udp = one(
        ["rudp://:0/192.168.2.1:53?sniffing=true"],
        [f"tunnel://:8443?tunnel.id={T2}&tunnel.weight=255"],
    )
    assert isinstance(udp, TunnelClientPlan)
    assert (udp.network, udp.sniffing, udp.server.weight, udp.tunnel_id.weight) == (
        "udp",
        False,
        255,
        255,
    )
    assert udp.server.mux == MUX_DEFAULTS["tunnel"] and udp.nodes[0].network == "udp"
    assert listen_specs([plan, udp]) == []


def test_visitor_plan_udp_options() -> None:
    plan = one(
        ["udp://127.0.0.1:1053/dns.example?keepalive=true&ttl=30s&readBufferSize=4096"],
        [f"relay://:8443?tunnel.id={T2}"],
    )
    assert isinstance(plan, VisitorPlan)
    assert (plan.listen, plan.keepalive, plan.ttl, plan.read_buffer_size) == (
        Endpoint("127.0.0.1", 1053),
        True,
        30.0,
        4096,
    )
    assert plan.targets[0].addr == "dns.example:0" and plan.tunnel_id == TunnelId.parse(T2)
    assert listen_specs([plan]) == [
        ListenSpec(plan.name, "visitor", "udp", Endpoint("127.0.0.1", 1053))
    ]
    tcp = one(["tcp://:8000?sniffing=true"], [f"relay://:8443?tunnel.id={T2}"])
    assert isinstance(tcp, VisitorPlan)
    assert (tcp.targets, tcp.sniffing, tcp.ttl, tcp.read_buffer_size, tcp.keepalive) == (
        (),
        True,
        5.0,
        65535,
        False,
    )


def test_listen_specs_order_and_port_conflicts() -> None:
    plans = build_plans(
        load_cli(
            [
                "relay://:8443?entryPoint=:8080",
                "tcp://:2222/ssh.example",
                "udp://:2222/dns.example",
            ],
            [f"relay://:8443?tunnel.id={T1}"],
        )
    )
    assert [(s.service, s.role, s.network, s.endpoint.port) for s in listen_specs(plans)] == [
        ("service-0", "relay", "tcp", 8443),
        ("service-0", "entrypoint", "tcp", 8080),
        ("service-1", "visitor", "tcp", 2222),
        ("service-2", "visitor", "udp", 2222),
    ]
    # Port 0 never conflicts; different hosts on the same port do not either.
    build_plans(
        load_cli(
            ["relay://:0?entryPoint=:0", "relay://127.0.0.1:9000", "relay://127.0.0.2:9000"], []
        )
    )
    from burrow.config.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        build_plans(load_cli(["relay://:8443?entryPoint=127.0.0.1:8443"], []))
    assert info.value.key == "services[0].handler.metadata.entrypoint"
