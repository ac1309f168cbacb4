"""Strict where it helps, lenient where gost is (issue 10, item 4): one row per case.

Accepted-but-unused keys come back as ConfigWarning data (kind, key, line, fix); malformed
ingress rules and ``tunnel=`` shorthands are ConfigErrors naming the key.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from burrow.config.errors import ConfigError
from burrow.config.load import load_checked
from burrow.config.notices import GOST_FEATURE, ConfigWarning
from burrow.config.plan import build_plans
from burrow.config.plan_types import RelayServerPlan

T1 = "4d21094e-b74c-4916-86c1-d9fa36ea677b"
T2 = "ac74d9dd-3125-442a-a7c1-f9e49e05faca"

SERVER_YAML = """\
services:
- name: srv
  addr: ":8443"
  handler:
    type: relay
    metadata:
      entryPoint: ":8080"
      ingress: main
ingresses:
- name: main
  rules:
  - hostname: a.example
    endpoint: {t1}
"""


def checked(tmp_path: Path, name: str, text: str) -> tuple[list[ConfigWarning], Path]:
    path = tmp_path / name
    path.write_text(text)
    loaded = load_checked(path)
    warnings = list(loaded.warnings)
    build_plans(loaded.config, source=str(path), warnings=warnings)
    return warnings, path


# (case, file name, text, expected (kind, key, line, words in problem, words in fix))
WARNING_CASES = [
    (
        "metadata typo: did-you-mean",
        "a.yaml",
        SERVER_YAML.replace("entryPoint:", "entryPiont:"),
        ("unknown", "services[0].handler.metadata.entrypiont", 7, "did you mean 'entryPoint'", "rename it to entryPoint"),
    ),
    (
        "gost metadata Burrow lacks",
        "b.yaml",
        SERVER_YAML.replace("      ingress: main\n", "      ingress: main\n      tunnel.ttl: 30s\n"),
        ("gost", "services[0].handler.metadata.tunnel.ttl", 9, GOST_FEATURE, "run gost"),
    ),
    (
        "unknown metadata, no near miss",
        "c.yaml",
        SERVER_YAML.replace("      ingress: main\n", "      ingress: main\n      zzz: 1\n"),
        ("unknown", "services[0].handler.metadata.zzz", 9, "unknown metadata key 'zzz'", "remove it"),
    ),
    (
        "gost section api",
        "d.yaml",
        "api:\n  addr: ':18080'\n" + SERVER_YAML,
        ("gost", "api", 1, GOST_FEATURE, "run gost"),
    ),
    (
        "gost log section: level/format/output are Burrow's log settings, no warning",
        "d2.yaml",
        "log:\n  level: warn\n  format: json\n" + SERVER_YAML,
        None,
    ),
    (
        "gost service field",
        "e.yaml",
        SERVER_YAML.replace('  addr: ":8443"\n', '  addr: ":8443"\n  bypass: b0\n'),
        ("gost", "services[0].bypass", 4, GOST_FEATURE, "run gost"),
    ),
    (
        "structural typo in a gost file: did-you-mean",
        "f.yaml",
        SERVER_YAML.replace("  handler:", "  handlr:\n    type: relay\n  handler:"),
        ("unknown", "services[0].handlr", 4, "did you mean 'handler'", "rename it to handler"),
    ),
    (
        "burrow admin: implemented, no warning",
        "i.toml",
        ('[burrow]\nadmin = "127.0.0.1:9000"\n[[services]]\nname = "s"\naddr = ":8443"\n'
        '[services.handler]\ntype = "relay"\n'),
        None,
    ),
    (
        "TOML metadata typo: a warning too (metadata stays open, as in gost)",
        "j.toml",
        ('[[services]]\nname = "s"\naddr = ":8443"\n[services.handler]\ntype = "relay"\n'
        '[services.handler.metadata]\nreadTimout = "5s"\n'),
        ("unknown", "services[0].handler.metadata.readtimout", 7, "did you mean 'readTimeout'", "rename it to readTimeout"),
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [case[1:] for case in WARNING_CASES],
    ids=[case[0] for case in WARNING_CASES],
)
def test_warning_table(
    tmp_path: Path, name: str, text: str, expected: tuple[str, str, int, str, str] | None
) -> None:
    warnings, path = checked(tmp_path, name, text.format(t1=T1))
    if expected is None:
        assert warnings == []
        return
    kind, key, line, problem, fix = expected
    (warning,) = warnings
    assert (warning.kind, warning.key, warning.line, warning.file) == (kind, key, line, str(path))
    assert problem in warning.problem and fix in warning.fix
    assert str(warning).startswith(f"{path}:{line}: {key}: ")


def test_ingress_reload_is_used_so_not_warned(tmp_path: Path) -> None:
    """gost's ingresses[].reload is implemented (the supervisor re-reads the file on that period)."""
    text = SERVER_YAML.format(t1=T1).replace("- name: main\n", "- name: main\n  reload: 10s\n")
    warnings, _ = checked(tmp_path, "h.yaml", text)
    assert [w for w in warnings if "reload" in (w.key or "")] == []


def test_clean_configs_have_no_warnings(tmp_path: Path, seed_dir: Path) -> None:
    warnings, _ = checked(tmp_path, "ok.yaml", SERVER_YAML.format(t1=T1))
    assert warnings == []
    for seed in sorted((seed_dir / "configs").glob("0[1-5]*.yaml")):
        assert load_checked(seed).warnings == [], seed


@pytest.mark.parametrize("prefix", ["06", "08", "10"])
def test_seed_misplaced_dialer_stays_a_warning(prefix: str, seed_dir: Path) -> None:
    (path,) = (seed_dir / "configs").glob(f"{prefix}-*.yaml")
    loaded = load_checked(path)
    (warning,) = loaded.warnings
    assert (warning.kind, warning.key) == ("unknown", "chains[0].hops[0].nodes[0].connector.dialer")
    assert "one level up" in warning.problem
    assert build_plans(loaded.config)  # still runs


def test_command_line_reports_each_parameter_once() -> None:
    loaded = load_checked(
        None,
        [f"relay://:8443?entryPiont=:80&tunnel=a.example:{T1}", "tcp://:2222/a.example"],
        [f"relay://:8443?tunnelID={T1}&connectTimeot=1s"],
    )
    assert [(w.key, w.kind) for w in loaded.warnings] == [
        ("-L[0].entryPiont", "unknown"),
        ("-F[0].connectTimeot", "unknown"),
    ]
    assert "did you mean 'connectTimeout'" in loaded.warnings[1].problem


# (case, text, error key, words in problem, words in fix)
ERROR_CASES = [
    (
        "rule without hostname (misspelled)",
        SERVER_YAML.replace("  - hostname: a.example", "  - hostnmae: a.example"),
        "ingresses[0].rules[0].hostname", "without a hostname", "add hostname",
    ),
    (
        "rule without endpoint",
        SERVER_YAML.replace("    endpoint: {t1}", "    endpoitn: {t1}"),
        "ingresses[0].rules[0].endpoint", "without an endpoint", "add endpoint",
    ),
    (
        "rule with a bad UUID",
        SERVER_YAML.replace("endpoint: {t1}", "endpoint: not-a-uuid"),
        "ingresses[0].rules[0].endpoint", "is not a tunnel UUID", "use <uuid>",
    ),
    (
        "tunnel= entry without a UUID",
        SERVER_YAML.replace("ingress: main", "tunnel: example.com"),
        "services[0].handler.metadata.tunnel", "is not host:uuid", "tunnel=example.com:<uuid>",
    ),
    (
        "tunnel= entry with an empty UUID",
        SERVER_YAML.replace("ingress: main", "tunnel: 'example.com:'"),
        "services[0].handler.metadata.tunnel", "is not host:uuid", "tunnel=example.com:<uuid>",
    ),
    (
        "tunnel= entry with a bad UUID",
        SERVER_YAML.replace("ingress: main", "tunnel: example.com:1234"),
        "services[0].handler.metadata.tunnel", "is not a tunnel UUID", "use <uuid>",
    ),
    (
        "tunnel= host repeated",
        SERVER_YAML.replace("ingress: main", f"tunnel: a.example:{T1},A.example:{T2}"),
        "services[0].handler.metadata.tunnel", "given twice", "one entry per host",
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "key", "problem", "fix"),
    [case[1:] for case in ERROR_CASES],
    ids=[case[0] for case in ERROR_CASES],
)
def test_error_table(tmp_path: Path, text: str, key: str, problem: str, fix: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text.format(t1=T1))
    with pytest.raises(ConfigError) as info:
        build_plans(load_checked(path).config, source=str(path))
    err = info.value
    assert (err.key, err.file) == (key, str(path))
    assert problem in err.problem and fix in err.fix


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("relay://:8443?tunnel=example.com", "is not host:uuid"),
        (f"relay://:8443?tunnel=a.example:{T1}&tunnel=b.example:{T2}", "given twice"),
        (f"relay://:8443?entryPoint=:80&entrypoint=:81&tunnel=a.example:{T1}", "given twice"),
    ],
    ids=["no uuid", "repeated tunnel=", "repeated entryPoint="],
)
def test_command_line_shorthand_errors(url: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_plans(load_checked(None, [url]).config)
    assert problem in info.value.problem and info.value.key is not None
    assert "tunnel" in info.value.key or "entrypoint" in info.value.key


def test_shorthand_trailing_comma_and_good_entries() -> None:
    (plan,) = build_plans(load_checked(None, [f"relay://:8443?tunnel=a.example:{T1},"]).config)
    assert isinstance(plan, RelayServerPlan)
    assert plan.ingress_rules == (("a.example", T1),)
