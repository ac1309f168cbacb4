"""Credentials: per-tunnel BIND/CONNECT secrets, global users, required mode, constant work."""

from __future__ import annotations

import hmac
from typing import Any

import pytest

from burrow.common.ids import TunnelId
from burrow.config.plan_types import MUX_DEFAULTS, Endpoint, RelayServerPlan, TunnelCredential
from burrow.proto.relay import Cmd, RelayRequest
from burrow.proto.relay_features import TunnelFeature, UserAuthFeature
from burrow.server import tunnel_auth
from burrow.server.tunnel_auth import Credentials

T1 = "4d21094e-b74c-4916-86c1-d9fa36ea677b"  # has credentials
T2 = "ac74d9dd-3125-442a-a7c1-f9e49e05faca"  # has none
T3 = "0d7d2c9e-1111-4222-8333-944445555666"  # bind credential only


def plan(
    *,
    auths: tuple[tuple[str, str], ...] = (),
    required: bool = False,
) -> RelayServerPlan:
    return RelayServerPlan(
        name="s", listen=Endpoint("", 0), dialect="tunnel", entrypoints=(), ingress_rules=(),
        direct=True, auths=auths, mux=MUX_DEFAULTS["tunnel"], mux_version_override=None,
        read_timeout=1.0, nodelay=False, proxy_enabled=False, sniff_timeout=1.0,
        tunnel_auths=(
            TunnelCredential(T1, ("app", "bind-secret"), ("vis", "connect-secret")),
            TunnelCredential(T3, ("app3", "bind3"), None),
        ),
        tunnel_auth_required=required,
    )  # fmt: skip


def req(cmd: int, tunnel: str, user: str | None = None, password: str = "") -> RelayRequest:
    features: list[Any] = [TunnelFeature(TunnelId.parse(tunnel), 20)]
    if user is not None:
        features.insert(0, UserAuthFeature(user, password))
    return RelayRequest(cmd, tuple(features))


def test_bind_needs_the_tunnels_own_credential() -> None:
    c = Credentials(plan(auths=(("global", "gpass"),)))
    assert c.check(req(Cmd.BIND, T1, "app", "bind-secret"))
    assert not c.check(req(Cmd.BIND, T1, "app", "wrong"))
    assert not c.check(req(Cmd.BIND, T1, "app", "connect-secret"))  # roles are separate
    assert not c.check(req(Cmd.BIND, T1))
    # The global user does not open a tunnel that has its own credential ...
    assert not c.check(req(Cmd.BIND, T1, "global", "gpass"))
    # ... but still works for tunnels without one (gost's auth keeps working).
    assert c.check(req(Cmd.BIND, T2, "global", "gpass"))
    assert not c.check(req(Cmd.BIND, T2, "global", "nope"))
    assert c.protects_bind(TunnelId.parse(T1)) and not c.protects_bind(TunnelId.parse(T2))


def test_connect_credential_and_fallback_to_global_users() -> None:
    c = Credentials(plan())
    assert c.check(req(Cmd.CONNECT, T1, "vis", "connect-secret"))
    assert not c.check(req(Cmd.CONNECT, T1, "app", "bind-secret"))
    assert not c.check(req(Cmd.CONNECT, T1))
    # No connect credential on T3 and no global users: visitors are let in, as without auth.
    assert c.check(req(Cmd.CONNECT, T3))
    assert c.check(req(Cmd.CONNECT, T2))
    assert c.check(req(Cmd.BIND, T2))  # auth off for tunnels without an entry


def test_required_refuses_tunnels_without_an_entry() -> None:
    c = Credentials(plan(required=True))
    assert c.enabled
    assert not c.check(req(Cmd.BIND, T2))
    assert not c.check(req(Cmd.BIND, T2, "app", "bind-secret"))
    assert not c.check(req(Cmd.CONNECT, T2))
    assert c.check(req(Cmd.BIND, T1, "app", "bind-secret"))
    assert c.check(req(Cmd.CONNECT, T3))  # an entry without connect: the global rule applies


def test_no_auth_at_all_is_disabled() -> None:
    p = RelayServerPlan(
        **{**{f: getattr(plan(), f) for f in plan().__struct_fields__}, "tunnel_auths": ()}
    )
    c = Credentials(p)
    assert not c.enabled
    assert c.check(req(Cmd.BIND, T1))


@pytest.mark.parametrize("required", [False, True])
def test_unknown_tunnel_costs_the_same_work_as_a_wrong_password(
    monkeypatch: pytest.MonkeyPatch, required: bool
) -> None:
    """By construction: the same compare_digest calls, on equal-length inputs, either way."""
    calls: list[tuple[int, int]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(tunnel_auth.hmac, "compare_digest", spy)
    c = Credentials(plan(auths=(("g1", "p1"), ("g2", "p2")), required=required))
    traces = []
    for tunnel in (T1, T2):  # exists (wrong password) / does not exist
        for password in ("x", "a much longer guess of a password" * 4):
            calls.clear()
            assert not c.check(req(Cmd.BIND, tunnel, "app", password))
            traces.append(list(calls))
    assert all(t == traces[0] for t in traces)
    assert traces[0] == [(32, 32)] * 3  # the tunnel's (or dummy) digest + one per global user
