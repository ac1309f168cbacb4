"""gost command lines (seed document, spec §5.4) against their YAML twins.

gost's CLI and its YAML do not produce identical trees, so the comparison normalises what §5
says differs and nothing else:
* generated names (service-0, target-0, ...) vs hand-picked ones: compared by position;
* the CLI copies every query parameter into handler, listener and service metadata (-L) and into
  connector and dialer metadata (-F), while the YAML puts each key in one place: metadata is
  compared as the union of those places;
* CLI metadata values are always strings ("true"), YAML ones are typed (true): compared as text;
* a missing dialer (seeds 06/08/10 misplace it, so gost ignores it) is gost's default tcp dialer.
Where the trees really differ (ingress vs tunnel= shorthand) only the plans are compared.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import msgspec
import pytest

from burrow.common.exitcodes import ExitCode
from burrow.config.gost_yaml import load_yaml
from burrow.config.load import load_cli, load_file
from burrow.config.plan import build_plans
from burrow.config.plan_types import ServicePlan, TunnelClientPlan, VisitorPlan
from burrow.config.schema import Config
from burrow.config.toml_load import load_toml
from burrow.supervisor import cli

T1 = "4d21094e-b74c-4916-86c1-d9fa36ea677b"
T2 = "ac74d9dd-3125-442a-a7c1-f9e49e05faca"
T3 = "aede1f6a-762b-45da-b937-b6632356555a"
T4 = "22f43305-42f7-4232-bbbc-aa6c042e3bc3"


def split(line: str) -> tuple[list[str], list[str]]:
    """-L and -F values of a gost command line."""
    words = shlex.split(line)
    assert words[0] == "gost"
    services = [words[i + 1] for i, w in enumerate(words) if w == "-L"]
    nodes = [words[i + 1] for i, w in enumerate(words) if w == "-F"]
    return services, nodes


def doc_lines(seed_dir: Path) -> list[str]:
    return re.findall(
        r"^\s*(gost -L .+?)\s*$", (seed_dir / "reverse-proxy-tunnel.md").read_text(), re.MULTILINE
    )


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def normalise(config: Config) -> dict[str, Any]:
    """The config as a plain tree with §5's CLI/YAML differences folded away (module docstring)."""
    services = []
    for svc in config.services:
        md = {
            **svc.metadata,
            **svc.handler.metadata,
            **(svc.listener.metadata if svc.listener else {}),
        }
        services.append(
            {
                "addr": svc.addr,
                "handler": (svc.handler.type, svc.handler.chain, svc.handler.auth),
                "listener": (svc.listener.type, svc.listener.chain)
                if svc.listener
                else ("tcp", None),
                "targets": [n.addr for n in svc.forwarder.nodes] if svc.forwarder else [],
                "metadata": {k: _text(v) for k, v in md.items()},
            }
        )
    chains = []
    for chain in config.chains:
        for hop in chain.hops:
            for node in hop.nodes:
                assert node.connector is not None
                dialer = node.dialer.type if node.dialer else "tcp"
                md = {**node.connector.metadata, **(node.dialer.metadata if node.dialer else {})}
                chains.append(
                    (
                        chain.name,
                        node.addr,
                        node.connector.type,
                        dialer,
                        {k: _text(v) for k, v in md.items()},
                    )
                )
    return {"services": services, "chains": chains}


def anonymous(plans: list[ServicePlan]) -> list[ServicePlan]:
    """Plans with service and target names blanked (generated vs hand-picked)."""
    out: list[ServicePlan] = []
    for plan in plans:
        plan = msgspec.structs.replace(plan, name="")
        if isinstance(plan, TunnelClientPlan):
            plan = msgspec.structs.replace(
                plan, nodes=tuple(msgspec.structs.replace(n, name="") for n in plan.nodes)
            )
        if isinstance(plan, VisitorPlan):
            plan = msgspec.structs.replace(
                plan, targets=tuple(msgspec.structs.replace(n, name="") for n in plan.targets)
            )
        out.append(plan)
    return out


# CLI line -> YAML twin in the same section of the seed document.
TWINS = [
    (f"gost -L rtcp://:0/192.168.1.1:80 -F relay://:8443?tunnelID={T1}", "02"),
    (f"gost -L rtcp://:0/192.168.2.1:80 -F relay://:8443?tunnelID={T2}", "05"),
    (f"gost -L tcp://:8000?sniffing=true -F relay://:8443?tunnelID={T2}", "06"),
    (f"gost -L tcp://:2222/ssh.srv-2.local:0 -F relay://:8443?tunnelID={T3}", "08"),
    # The document's DNS visitor line says tcp://, its YAML twin says udp: the udp form is the twin.
    (f"gost -L udp://:1053/dns.srv-2.local:0 -F relay://:8443?tunnelID={T3}", "10"),
    (
        (
            "gost -L tcp://:15201/iperf.local:0 -L udp://:15201/iperf.local:0?keepalive=true "
            f"-F relay://:8443?tunnelID={T4}"
        ),
        "13",
    ),
]


def twin_config(seed_dir: Path, prefix: str) -> Config:
    (path,) = (seed_dir / "configs").glob(f"{prefix}-*.yaml")
    if prefix != "13":
        return load_file(path)
    # Seed 13 repeats `services:` (an error); its intent is one list of two services.
    lines = path.read_text().splitlines()
    assert lines[12] == "services:"
    return load_yaml("\n".join(lines[:12] + lines[13:]))


def test_document_lines_are_all_known(seed_dir: Path) -> None:
    lines = doc_lines(seed_dir)
    assert len(lines) == 10
    table = {line for line, _ in TWINS}
    # Lines without a YAML twin in the document, and the tcp:// DNS line the document pairs
    # with udp YAML.
    alone = {
        f"gost -L tcp://:8000/srv-2.local:0 -F relay://:8443?tunnelID={T2}",
        f"gost -L tcp://:6379/redis.srv-3.local:0 -F relay://:8443?tunnelID={T3}",
        f"gost -L tcp://:1053/dns.srv-2.local:0 -F relay://:8443?tunnelID={T3}",
        f"gost -L tcp://:2053/dns.srv-3.local:0 -F relay://:8443?tunnelID={T3}",
        f"gost -L rtcp://:0/:5201 -L rudp://:0/:5201 -F relay://:8443?tunnelID={T4}",
    }
    assert set(lines) <= table | alone
    assert len(set(lines) - table) == 5


def test_every_document_line_checks_and_converts(
    seed_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for line in doc_lines(seed_dir):
        services, nodes = split(line)
        argv = [a for s in services for a in ("-L", s)] + [a for n in nodes for a in ("-F", n)]
        assert cli.main(["check", *argv]) == ExitCode.OK, line
        assert cli.main(["convert", *argv]) == ExitCode.OK, line
        out = capsys.readouterr().out
        toml_text = out[out.index("# Burrow configuration converted") :]
        config = load_cli(services, nodes)
        assert load_toml(toml_text) == config, line
        assert build_plans(load_toml(toml_text)) == build_plans(config)


@pytest.mark.parametrize(("line", "prefix"), TWINS)
def test_cli_line_matches_yaml_twin(line: str, prefix: str, seed_dir: Path) -> None:
    cli_config = load_cli(*split(line))
    yaml_config = twin_config(seed_dir, prefix)
    assert normalise(cli_config) == normalise(yaml_config)
    assert anonymous(build_plans(cli_config)) == anonymous(build_plans(yaml_config))


def test_iperf_client_line_differs_from_yaml_only_in_host_filters(seed_dir: Path) -> None:
    # The document's YAML adds `host: iperf.local` to each node; its CLI line cannot express it.
    cli_plans = anonymous(
        build_plans(
            load_cli(
                *split(f"gost -L rtcp://:0/:5201 -L rudp://:0/:5201 -F relay://:8443?tunnelID={T4}")
            )
        )
    )
    yaml_plans = anonymous(build_plans(twin_config(seed_dir, "12")))
    assert [n.host for p in yaml_plans if isinstance(p, TunnelClientPlan) for n in p.nodes] == [
        "iperf.local"
    ] * 2
    unhosted = [
        msgspec.structs.replace(
            p, nodes=tuple(msgspec.structs.replace(n, host=None) for n in p.nodes)
        )
        for p in yaml_plans
        if isinstance(p, TunnelClientPlan)
    ]
    assert cli_plans == unhosted


def test_server_line_with_tunnel_shorthand_matches_ingress_yaml(seed_dir: Path) -> None:
    # spec §5.4: the inline `tunnel=` rules are the same routing as seed 01's ingress block.
    line = f'gost -L "relay://:8443?entryPoint=:80&tunnel=.example.com:{T1},example.org:{T2}"'
    cli_plans = build_plans(load_cli(*split(line)))
    assert cli_plans == build_plans(twin_config(seed_dir, "01"))


def test_spec_lines_parse_as_section_5_says() -> None:
    config = load_cli(["rtcp://:0/192.168.1.1:80"], [f"relay://server:8443?tunnel.id={T1}"])
    svc = config.services[0]
    assert (svc.name, svc.addr, svc.handler.type, svc.listener and svc.listener.type) == (
        "service-0",
        ":0",
        "rtcp",
        "rtcp",
    )
    assert (
        svc.listener is not None and svc.listener.chain == "chain-0" and svc.handler.chain is None
    )
    assert svc.forwarder is not None and svc.forwarder.nodes[0].name == "target-0"
    node = config.chains[0].hops[0].nodes[0]
    assert (config.chains[0].name, config.chains[0].hops[0].name, node.name, node.addr) == (
        "chain-0",
        "hop-0",
        "node-0",
        "server:8443",
    )
    assert node.connector is not None and node.connector.metadata == {"tunnel.id": T1}
    assert node.dialer is not None and (node.dialer.type, node.dialer.metadata) == (
        "tcp",
        {"tunnel.id": T1},
    )

    visitor = load_cli(
        ["udp://:1053/dns.srv-2.local?keepalive=true&ttl=10s"],
        [f"relay://server:8443?tunnel.id={T3}"],
    )
    (plan,) = build_plans(visitor)
    assert isinstance(plan, VisitorPlan)
    assert (plan.network, plan.keepalive, plan.ttl, plan.targets[0].addr) == (
        "udp",
        True,
        10.0,
        "dns.srv-2.local:0",
    )
    assert visitor.services[0].handler.chain == "chain-0"
    md = {"keepalive": "true", "ttl": "10s"}
    assert visitor.services[0].metadata == visitor.services[0].handler.metadata == md

    auth = load_cli(["relay://user:p%40ss@:8443?tunnel.direct=true"], [])
    assert auth.services[0].handler.auth is not None
    assert (auth.services[0].handler.auth.username, auth.services[0].handler.auth.password) == (
        "user",
        "p@ss",
    )

    tunnel = load_cli(["tunnel://:8443?entrypoint=:80"], [])
    assert (
        tunnel.services[0].handler.type,
        tunnel.services[0].listener and tunnel.services[0].listener.type,
    ) == ("tunnel", "tcp")
    weighted = build_plans(
        load_cli(["rtcp://:0/:80"], [f"tunnel://s:8443?tunnel.id={T1}&tunnel.weight=7"])
    )
    assert isinstance(weighted[0], TunnelClientPlan)
    assert (
        weighted[0].server.dialect,
        weighted[0].tunnel_id.weight,
        weighted[0].server.mux.version,
    ) == ("tunnel", 7, 2)
