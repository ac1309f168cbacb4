"""Every seed config through load, plans, ``burrow check`` and ``burrow convert`` round trips."""

from __future__ import annotations

import logging
from pathlib import Path

import msgspec
import pytest

from burrow.common.exitcodes import ExitCode
from burrow.config.errors import ConfigError
from burrow.config.load import load_file
from burrow.config.plan import build_plans
from burrow.config.plan_types import RelayServerPlan, TunnelClientPlan, VisitorPlan
from burrow.config.schema import Config
from burrow.config.toml_load import load_toml
from burrow.supervisor import cli

SEEDS = [f"{n:02d}" for n in range(1, 13)]
# What `burrow check` must mention for each seed: role, listen address, targets, server, tunnel.
EXPECT = {
    "01": [
        "service-0: tunnel server (relay dialect), listen :8443",
        "entry points :80",
        ".example.com -> 4d21094e-b74c-4916-86c1-d9fa36ea677b",
        "example.org  -> ac74d9dd",
    ],
    "02": [
        "service-0: tunnel client (rtcp) -> server :8443 (relay)",
        "tunnel 4d21094e-b74c-4916-86c1-d9fa36ea677b",
        "target-0=192.168.1.1:80",
    ],
    "03": [
        "example-com=192.168.1.1:80 [host example.com]",
        "fallback=192.168.2.1:80",
        "(sniffing)",
    ],
    "04": [
        "srv-2.local       -> ac74d9dd-3125-442a-a7c1-f9e49e05faca  (private)",
        "8 ingress rules",
    ],
    "05": ["srv-2.local=192.168.2.1:80", "tunnel ac74d9dd-3125-442a-a7c1-f9e49e05faca"],
    "06": ["service-0: visitor (tcp), listen :8000 -> server :8443 (relay)", "targets: (sniffing)"],
    "07": [
        "ssh=192.168.2.1:22 [host ssh.srv-2.local]",
        "redis=192.168.2.2:6379 [host redis.srv-3.local]",
    ],
    "08": [
        "visitor (tcp), listen :2222",
        "ssh=ssh.srv-2.local:0",
        "tunnel aede1f6a-762b-45da-b937-b6632356555a",
    ],
    "09": ["tunnel client (rudp)", "dns-2=192.168.2.2:53 [host dns.srv-3.local]"],
    "10": ["visitor (udp), listen :1053", "dns-1=dns.srv-2.local:0"],
    "11": [
        "entry points none; 1 ingress rules",
        "iperf.local -> 22f43305-42f7-4232-bbbc-aa6c042e3bc3",
    ],
    "12": [
        "iperf-tcp: tunnel client (rtcp)",
        "iperf-udp: tunnel client (rudp)",
        "iperf=:5201 [host iperf.local]",
    ],
}


def seed_file(seed_dir: Path, prefix: str) -> Path:
    (path,) = sorted((seed_dir / "configs").glob(f"{prefix}-*.yaml"))
    return path


@pytest.mark.parametrize("prefix", SEEDS)
def test_seed_checks_and_summarises(
    prefix: str, seed_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = seed_file(seed_dir, prefix)
    assert cli.main(["check", "-C", str(path)]) == ExitCode.OK
    out, _ = capsys.readouterr()
    assert out.startswith(f"{path}: OK, ")
    for text in EXPECT[prefix]:
        assert text in out, f"{text!r} missing from:\n{out}"


@pytest.mark.parametrize("prefix", SEEDS)
def test_seed_convert_round_trip(
    prefix: str, seed_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = seed_file(seed_dir, prefix)
    assert cli.main(["convert", "-C", str(path)]) == ExitCode.OK
    out, _ = capsys.readouterr()
    original = load_file(path)
    assert load_toml(out) == original
    assert build_plans(load_toml(out)) == build_plans(original)
    # Workers receive the config msgpack-encoded (supervisor run.py): it must survive that too.
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(original), type=Config) == original


def test_seed_roles(seed_dir: Path) -> None:
    kinds = {
        p: [type(plan) for plan in build_plans(load_file(seed_file(seed_dir, p)))] for p in SEEDS
    }
    assert kinds["01"] == kinds["04"] == kinds["11"] == [RelayServerPlan]
    assert (
        kinds["02"]
        == kinds["03"]
        == kinds["05"]
        == kinds["07"]
        == kinds["09"]
        == [TunnelClientPlan]
    )
    assert kinds["06"] == kinds["08"] == kinds["10"] == [VisitorPlan]
    assert kinds["12"] == [TunnelClientPlan, TunnelClientPlan]


@pytest.mark.parametrize(("prefix", "line"), [("06", 22), ("08", 26), ("10", 26)])
def test_misplaced_dialer_is_a_warning(
    prefix: str, line: int, seed_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # These seeds indent `dialer:` under `connector:`; gost ignores it, so Burrow only warns.
    path = seed_file(seed_dir, prefix)
    with caplog.at_level(logging.WARNING, logger="burrow.config"):
        config = load_file(path)
    assert config.chains[0].hops[0].nodes[0].dialer is None
    (record,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert (
        "chains[0].hops[0].nodes[0].connector.dialer: 'dialer' is not a key here; it belongs one "
        "level up (fix: indent dialer: like the keys of the enclosing block)"
    ) in record.getMessage()
    assert f"{path}:{line}:" in record.getMessage()
    plan = build_plans(config)[0]
    assert isinstance(plan, VisitorPlan) and plan.server.dialer == "tcp"


def test_seed_13_duplicate_services_key(seed_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = seed_file(seed_dir, "13")
    with pytest.raises(ConfigError) as info:
        load_file(path)
    assert (info.value.key, info.value.line, info.value.file) == ("services", 13, str(path))
    assert cli.main(["check", "-C", str(path)]) == ExitCode.CONFIG
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        f"burrow: config error: {path}:13: services: key 'services' is given twice in one mapping "
        "(first on line 1); gost refuses this too (fix: merge the two services: blocks into one)\n"
    )
