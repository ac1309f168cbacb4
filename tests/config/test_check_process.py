"""``python3 -m burrow.supervisor check`` as a real process: warnings, --strict, exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from e2e.harness import Launcher, server_config, subprocess_env

from burrow.common.exitcodes import ExitCode

T1 = "4d21094e-b74c-4916-86c1-d9fa36ea677b"
CHECK_TIMEOUT = 60.0  # a cold interpreter on a loaded 2-core machine

SERVER = f"""\
services:
- name: srv
  addr: "127.0.0.1:8443"
  handler:
    type: relay
    metadata:
      entryPiont: "127.0.0.1:8080"
      ingress: main
ingresses:
- name: main
  rules:
  - hostname: a.example
    endpoint: {T1}
"""


def check(path: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "burrow.supervisor", "check", *flags, "-C", str(path)],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=CHECK_TIMEOUT,
        check=False,
    )


def test_typo_warns_with_did_you_mean_and_strict_fails(tmp_path: Path) -> None:
    path = tmp_path / "server.yaml"
    path.write_text(SERVER)
    warning = (
        f"burrow: warning: {path}:7: services[0].handler.metadata.entrypiont: unknown metadata "
        "key 'entryPiont' (did you mean 'entryPoint'?) (fix: rename it to entryPoint)\n"
    )
    lenient = check(path)
    assert lenient.returncode == ExitCode.OK, lenient.stderr
    assert lenient.stderr == warning
    assert lenient.stdout.startswith(f"{path}: OK, 1 service(s), 1 warning(s) on stderr\n")
    assert "entry points none" in lenient.stdout  # the typo really lost the entry point
    strict = check(path, "--strict")
    assert strict.returncode == ExitCode.CONFIG
    assert strict.stderr == warning + "burrow: config error: 1 warning(s) and --strict\n"
    assert strict.stdout == ""
    path.write_text(SERVER.replace("entryPiont", "entryPoint"))
    fixed = check(path, "--strict")
    assert (fixed.returncode, fixed.stderr) == (ExitCode.OK, "")


def test_gost_sections_are_named_as_gost_features(tmp_path: Path) -> None:
    path = tmp_path / "gost.yaml"
    path.write_text(
        "log:\n  level: debug\napi:\n  addr: ':18080'\nmetrics:\n  addr: '127.0.0.1:9000'\n"
        + SERVER.replace("entryPiont", "entryPoint")
    )
    result = check(path)
    assert result.returncode == ExitCode.OK, result.stderr
    lines = result.stderr.splitlines()
    assert lines == [
        f"burrow: warning: {path}:{n}: {key}: gost feature Burrow does not implement: key "
        f"'{key}' is ignored (fix: remove it, or run gost for it)"
        for n, key in ((3, "api"),)
    ]  # log sets [burrow] log_*; metrics is the admin endpoint (docs/admin.md)
    assert "unknown key" not in result.stderr


def test_rule_without_hostname_exits_78_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "rule.yaml"
    path.write_text(
        SERVER.replace("entryPiont", "entryPoint").replace("- hostname:", "- hostnmae:")
    )
    result = check(path)
    assert result.returncode == ExitCode.CONFIG
    assert result.stdout == ""
    assert result.stderr.endswith(
        f"burrow: config error: {path}:12: ingresses[0].rules[0].hostname: ingress rule without "
        'a hostname (fix: add hostname: "example.com" (".example.com" matches its subdomains '
        "too))\n"
    )
    assert "did you mean 'hostname'" in result.stderr  # the warning names the misspelling


def test_startup_prints_warnings_then_serves(tmp_path: Path) -> None:
    config = server_config([("a.example", T1)], metadata={"readTimout": "5s", "tunnel.ttl": "9s"})
    config["api"] = {"addr": "127.0.0.1:18080"}
    launcher = Launcher(tmp_path)
    try:
        server = launcher.start("server", config)  # waits for READY
        err = server.stderr()
    finally:
        launcher.stop_all()
    assert (
        "services[0].handler.metadata.readtimout: unknown metadata key 'readTimout' (did you mean 'readTimeout'?)"
        in err
    )
    assert "services[0].handler.metadata.tunnel.ttl: gost feature Burrow does not implement" in err
    assert ": api: gost feature Burrow does not implement: key 'api' is ignored" in err


def test_gost_metrics_section_without_token_off_loopback_is_refused(tmp_path: Path) -> None:
    """gost's metrics.addr is the admin endpoint: every interface needs a token (exit 78)."""
    path = tmp_path / "metrics.yaml"
    path.write_text("metrics:\n  addr: ':9000'\n" + SERVER.replace("entryPiont", "entryPoint"))
    result = check(path)
    assert result.returncode == ExitCode.CONFIG
    assert f"{path}" in result.stderr and "burrow.admin:" in result.stderr
    assert "admin_token" in result.stderr
