"""burrow.supervisor.relay_cert: a TLS relay port without certFile gets the group's certificate."""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme

from burrow.config.errors import ConfigError
from burrow.config.load import load_file
from burrow.config.plan import build_plans
from burrow.config.plan_types import RelayServerPlan, ServicePlan
from burrow.supervisor.relay_cert import with_relay_certs

CONFIG = """
services:
- name: relay
  addr: 127.0.0.1:0
  handler: {type: tunnel, metadata: {entryPoint: "127.0.0.1:0"}}
  listener: {type: LISTENER}
"""


def _plans(tmp_path: Path, listener: str = "tls") -> list[ServicePlan]:
    path = tmp_path / "server.yaml"
    path.write_text(CONFIG.replace("LISTENER", listener))
    return build_plans(load_file(str(path)), source=str(path))


def _transport_of(plans: list[ServicePlan]) -> tuple[bytes, bytes]:
    (plan,) = plans
    assert isinstance(plan, RelayServerPlan)
    return plan.transport.cert_pem, plan.transport.key_pem


def test_generated_once_for_the_group(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no cert.pem / key.pem here
    first = _transport_of(with_relay_certs(_plans(tmp_path)))
    again = _transport_of(with_relay_certs(_plans(tmp_path)))  # a SIGHUP re-plans
    assert first == again and first[0].startswith(b"-----BEGIN CERTIFICATE")
    (plan,) = with_relay_certs(_plans(tmp_path))
    assert b"PRIVATE KEY" in first[1] and "PRIVATE" not in repr(plan)
    assert _transport_of(with_relay_certs(_plans(tmp_path, "ws"))) == (b"", b"")  # no TLS


def test_working_directory_pair_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    leaf = trustme.CA().issue_cert("relay.example")
    leaf.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    leaf.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    monkeypatch.chdir(tmp_path)
    cert, key = _transport_of(with_relay_certs(_plans(tmp_path)))
    assert cert == (tmp_path / "cert.pem").read_bytes()
    assert key == (tmp_path / "key.pem").read_bytes()


def test_mismatched_working_directory_pair(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ca = trustme.CA()
    ca.issue_cert("a.example").cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    ca.issue_cert("b.example").private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as err:
        with_relay_certs(_plans(tmp_path))
    assert err.value.key == "services[0].listener.tls.certFile"
    assert "certFile" in (err.value.fix or "")
