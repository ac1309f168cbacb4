"""deploy/production/: the server and client configs README's Production section points at pass
``burrow check --strict`` (TLS relay port, per-tunnel credentials, PROXY v2 behind a load
balancer, entry-point TLS), with /etc/burrow replaced by files made here."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import trustme

from burrow.common.exitcodes import ExitCode
from burrow.config.load import load_file
from burrow.config.plan import build_plans
from burrow.config.plan_types import RelayServerPlan, TunnelClientPlan
from burrow.supervisor import cli

EXAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "production"


@pytest.fixture
def etc(tmp_path: Path) -> Path:
    """What the examples expect under /etc/burrow: certificates, keys, the credentials file."""
    ca = trustme.CA()
    relay, app = ca.issue_cert("relay.example.com"), ca.issue_cert("app.example.com")
    (tmp_path / "tls").mkdir()
    relay.cert_chain_pems[0].write_to_path(str(tmp_path / "relay.crt"))
    relay.private_key_pem.write_to_path(str(tmp_path / "relay.key"))
    app.cert_chain_pems[0].write_to_path(str(tmp_path / "tls" / "app.example.com.crt"))
    app.private_key_pem.write_to_path(str(tmp_path / "tls" / "app.example.com.key"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    shutil.copy(EXAMPLES / "tunnels.toml", tmp_path / "tunnels.toml")
    (tmp_path / "tunnels.toml").chmod(0o600)
    return tmp_path


def _localised(etc: Path, name: str) -> Path:
    out = etc / name
    out.write_text((EXAMPLES / name).read_text().replace("/etc/burrow", str(etc)))
    return out


def test_production_examples_pass_check_strict(etc: Path) -> None:
    server, client = _localised(etc, "server.toml"), _localised(etc, "client.toml")
    assert cli.main(["check", "--strict", "-C", str(server)]) == ExitCode.OK
    assert cli.main(["check", "--strict", "-C", str(client)]) == ExitCode.OK
    (srv,) = build_plans(load_file(str(server)), source=str(server))
    assert isinstance(srv, RelayServerPlan) and srv.transport.kind == "tls"
    assert srv.entry_tls and srv.proxy_protocol == 2 and srv.proxy_trusted == ("10.0.0.0/24",)
    (plan,) = build_plans(load_file(str(client)), source=str(client))
    assert isinstance(plan, TunnelClientPlan) and plan.proxy_protocol == 2
    assert plan.server.transport.kind == "tls" and plan.server.transport.secure
