"""``burrow`` verbs in-process: check, convert, version, run mode hand-off, exit codes."""

from __future__ import annotations

import sys
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from burrow.common.exitcodes import ExitCode
from burrow.config.load import load_file
from burrow.config.plan import build_plans
from burrow.config.plan_types import Endpoint, RelayServerPlan
from burrow.config.schema import Config
from burrow.config.toml_load import load_toml
from burrow.supervisor import cli

T1 = "4d21094e-b74c-4916-86c1-d9fa36ea677b"


@pytest.fixture
def fake_run(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Replace burrow.supervisor.run with a recorder; returns the recorded calls."""
    calls: list[dict[str, Any]] = []

    def run(
        config: Config, plans: Sequence[object], *, workers: int | None, source: str | None
    ) -> int:
        calls.append({"config": config, "plans": list(plans), "workers": workers, "source": source})
        return 0

    module = types.ModuleType("burrow.supervisor.run")
    module.run = run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "burrow.supervisor.run", module)
    return calls


def test_default_config_is_a_local_relay_server() -> None:
    config = load_toml(cli.default_config_text())
    (plan,) = build_plans(config)
    assert isinstance(plan, RelayServerPlan)
    assert (plan.listen, plan.entrypoints, plan.dialect, plan.direct) == (
        Endpoint("127.0.0.1", 8443),
        (Endpoint("127.0.0.1", 8080),),
        "relay",
        False,
    )
    assert len(plan.ingress_rules) == 1


def test_no_arguments_runs_the_default(
    fake_run: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main([]) == ExitCode.OK
    (call,) = fake_run
    assert call["config"] == load_toml(cli.default_config_text())
    assert (call["workers"], call["source"]) == (None, None)
    err = capsys.readouterr().err
    assert "Attach a client" in err and "burrow -L rtcp://:0/127.0.0.1:3000" in err


def test_run_with_file_flags(fake_run: list[dict[str, Any]], seed_dir: Path) -> None:
    path = str(seed_dir / "configs" / "01-server-public.yaml")
    assert cli.main(["-C", path, "--workers", "2", "-D"]) == ExitCode.OK
    (call,) = fake_run
    assert (call["workers"], call["source"], call["config"].burrow.log_level) == (2, path, "debug")
    assert call["plans"] == build_plans(load_file(path))


def test_run_with_command_line(fake_run: list[dict[str, Any]], seed_dir: Path) -> None:
    node = f"relay://:8443?tunnel.id={T1}"
    assert cli.main(["-L", "rtcp://:0/:80", "-F", node]) == ExitCode.OK
    path = str(seed_dir / "configs" / "01-server-public.yaml")
    assert cli.main(["-C", path, "-L", "tcp://:2222/a.example", "-F", node]) == ExitCode.OK
    assert [call["source"] for call in fake_run] == ["cli", "cli"]
    assert len(fake_run[1]["plans"]) == 2


def test_run_refuses_bad_config(
    fake_run: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["-L", "socks5://:1080"]) == ExitCode.CONFIG
    assert fake_run == []
    assert capsys.readouterr().err.startswith(
        "burrow: config error: command line: services[0].handler.type:"
    )


def test_check_default_and_merge(seed_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["check"]) == ExitCode.OK
    assert capsys.readouterr().out.startswith("<built-in default.toml>: OK, 1 service(s)")
    path = str(seed_dir / "configs" / "01-server-public.yaml")
    argv = [
        "check",
        "-C",
        path,
        "-L",
        "tcp://:2222/ssh.srv-2.local:0",
        "-F",
        f"relay://:8443?tunnelID={T1}",
    ]
    assert cli.main(argv) == ExitCode.OK
    out = capsys.readouterr().out
    assert "service-0: tunnel server" in out and "service-1: visitor (tcp), listen :2222" in out


def test_check_reports_plan_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "v.yaml"
    path.write_text(
        "services:\n- name: v\n  addr: :2222\n  handler:\n    type: tcp\n    chain: nowhere\n"
    )
    assert cli.main(["check", "-C", str(path)]) == ExitCode.CONFIG
    assert capsys.readouterr().err == (
        f"burrow: config error: {path}:6: services[0].handler.chain: no chain named 'nowhere' "
        "(fix: define it under chains or fix the name (known: none defined))\n"
    )


def test_convert_default_loads_back(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["convert"]) == ExitCode.OK
    assert load_toml(capsys.readouterr().out) == load_toml(cli.default_config_text())


def test_version_and_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["version"]) == ExitCode.OK
    assert capsys.readouterr().out.startswith("burrow ")
    assert cli.main(["-V"]) == ExitCode.OK
    assert capsys.readouterr().out.startswith("burrow ")
    assert cli.main(["--workers", "0"]) == ExitCode.USAGE
    assert "--workers: must be 1 or more" in capsys.readouterr().err
    assert cli.main(["check", "--workers", "2"]) == ExitCode.USAGE
    assert cli.main(["check", "-h"]) == ExitCode.OK
    assert "usage: burrow check" in capsys.readouterr().out


def test_busy_poll_flag_and_key(
    fake_run: list[dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    example = Path(__file__).parents[2] / "deploy" / "burrow.example.toml"
    assert load_file(example).burrow.busy_poll_us == 0
    assert cli.main(["-C", str(example), "--busy-poll-us", "200"]) == ExitCode.OK
    assert fake_run[-1]["config"].burrow.busy_poll_us == 200
    assert cli.main(["--busy-poll-us", "20000"]) == ExitCode.USAGE
    assert "0 (off) to 10000" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text("[burrow]\nbusy_poll_us = -1\n")
    assert cli.main(["check", "-C", str(bad)]) == ExitCode.CONFIG
    assert "busy_poll_us" in capsys.readouterr().err


CLUSTER_TOML = """
[burrow.cluster]
redis = "redis://user:hunter2-password@10.0.0.9:6379/0"
node = "edge-1"
advertise = "10.0.0.5:8443"
secret = "0123456789abcdef0123"
sd_listen = "127.0.0.1:9100"
"""


def test_check_plans_the_cluster_and_hides_secrets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "node.toml"
    path.write_text(cli.default_config_text() + CLUSTER_TOML)
    assert cli.main(["check", "-C", str(path)]) == ExitCode.OK
    out = capsys.readouterr().out
    assert "cluster: node edge-1, advertise 10.0.0.5:8443, ttl 15s" in out
    assert "redis://user:***@10.0.0.9:6379/0; SD API on 127.0.0.1:9100" in out
    assert "hunter2" not in out and "0123456789abcdef0123" not in out
    path.write_text(cli.default_config_text() + CLUSTER_TOML.replace('node = "edge-1"\n', ""))
    assert cli.main(["check", "-C", str(path)]) == ExitCode.CONFIG
    err = capsys.readouterr().err
    assert "burrow.cluster.node" in err and "node.toml" in err
