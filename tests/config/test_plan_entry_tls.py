"""Plans: entry-point TLS certificates (files per hostname, a directory), and their errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme

from burrow.config.errors import ConfigError
from burrow.config.plan import build_plans
from burrow.config.plan_types import RelayServerPlan
from burrow.config.summary import render_summary
from burrow.config.toml_load import load_toml
from burrow.supervisor.tls_check import check_entry_certs

KEY = "services[0].handler.metadata.entrypoint.tls"


def server(md: str) -> RelayServerPlan:
    text = f"""
[[services]]
name = "server"
addr = ":8443"
[services.handler]
type = "tunnel"
[services.handler.metadata]
entrypoint = ":8080"
{md}
"""
    (plan,) = build_plans(load_toml(text))
    check_entry_certs([plan])  # what the supervisor does right after planning
    assert isinstance(plan, RelayServerPlan)
    return plan


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def pair(ca: trustme.CA, tmp: Path, stem: str, *names: str, key_name: str = "") -> Path:
    cert = ca.issue_cert(*names)
    cert.cert_chain_pems[0].write_to_path(str(tmp / f"{stem}.crt"))
    cert.private_key_pem.write_to_path(str(tmp / (key_name or f"{stem}.key")))
    return tmp / f"{stem}.crt"


def test_files_and_directory_are_inlined(ca: trustme.CA, tmp_path: Path) -> None:
    d = tmp_path / "certs"
    d.mkdir()
    pair(ca, d, "_wildcard.example.com", "*.example.com", key_name="_wildcard.example.com-key.pem")
    pair(ca, d, "b.test", "b.test")
    (d / "ca-bundle.pem").write_bytes(ca.cert_pem.bytes())  # no key next to it: not a host
    crt = pair(ca, tmp_path, "app", "app.example.com")
    plan = server(f"""
"entrypoint.tls.dir" = "{d}"
"entrypoint.tls.handshakeTimeout" = "3s"
[[services.handler.metadata."entrypoint.tls.certs"]]
hostname = "App.Example.com"
cert = "{crt}"
key = "{tmp_path / "app.key"}"
redirect = true
""")
    got = {c.hostname: c for c in plan.entry_tls}
    assert sorted(got) == ["*.example.com", "app.example.com", "b.test"]
    assert got["app.example.com"].redirect and not got["b.test"].redirect
    assert got["app.example.com"].cert_pem == crt.read_bytes()
    assert b"PRIVATE KEY" in got["b.test"].key_pem
    assert "PRIVATE" not in repr(plan)
    assert plan.entry_tls_handshake_timeout == 3.0
    summary = render_summary([plan])
    assert "TLS terminated for 3 hostnames, 1 redirecting HTTP" in summary
    assert "PRIVATE" not in summary


def test_missing_file_names_file_key_and_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        server(f"""
[[services.handler.metadata."entrypoint.tls.certs"]]
hostname = "app.test"
cert = "{tmp_path / "nope.crt"}"
key = "{tmp_path / "nope.key"}"
""")
    text = str(err.value)
    assert "nope.crt" in text and f"{KEY}.certs[0]" in text and "check the path" in text


def test_key_not_matching_its_certificate(ca: trustme.CA, tmp_path: Path) -> None:
    crt = pair(ca, tmp_path, "a", "a.test")
    pair(ca, tmp_path, "other", "other.test")
    with pytest.raises(ConfigError) as err:
        server(f"""
[[services.handler.metadata."entrypoint.tls.certs"]]
hostname = "a.test"
cert = "{crt}"
key = "{tmp_path / "other.key"}"
""")
    text = str(err.value)
    assert "does not match certificate" in text and "other.key" in text and "a.crt" in text
    assert f"{KEY}.certs[0]" in text
    assert "give the key the certificate was issued for" in text


def test_not_pem(tmp_path: Path) -> None:
    (tmp_path / "a.crt").write_bytes(b"not a certificate")
    (tmp_path / "a.key").write_bytes(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    with pytest.raises(ConfigError, match="holds no PEM certificate"):
        server(f'"entrypoint.tls.dir" = "{tmp_path}"')


def test_directory_errors(ca: trustme.CA, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read certificate directory"):
        server(f'"entrypoint.tls.dir" = "{tmp_path / "missing"}"')
    (tmp_path / "lonely.crt").write_bytes(ca.cert_pem.bytes())
    with pytest.raises(ConfigError, match=r"has no key file.*lonely\.key"):
        server(f'"entrypoint.tls.dir" = "{tmp_path}"')


def test_bad_hostnames(ca: trustme.CA, tmp_path: Path) -> None:
    crt = pair(ca, tmp_path, "a", "a.test")
    for host in ("a.*.test", "*a.test", ""):
        with pytest.raises(ConfigError, match="hostname"):
            server(f"""
[[services.handler.metadata."entrypoint.tls.certs"]]
hostname = "{host}"
cert = "{crt}"
key = "{tmp_path / "a.key"}"
""")
