"""[burrow] admin planning: loopback needs no token, anything else does; no shared ports."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from burrow.admin.api import REDACTED, AdminApi, redact
from burrow.config.admin import plan_admin
from burrow.config.errors import ConfigError
from burrow.config.metadata import Endpoint
from burrow.config.plan_types import ListenSpec
from burrow.config.schema import BurrowSettings, Config

TOKEN = "0123456789abcdef0123"


def config(**settings: object) -> Config:
    return Config(burrow=msgspec.convert(settings, BurrowSettings))


@pytest.mark.parametrize("address", ["127.0.0.1:9100", "[::1]:9100", "localhost:9100"])
def test_loopback_needs_no_token(address: str) -> None:
    plan = plan_admin(config(admin=address), "c.toml")
    assert plan is not None and plan.token is None and plan.metrics_path == "/metrics"


@pytest.mark.parametrize("address", [":9100", "0.0.0.0:9100", "192.0.2.1:9100", "[::]:9100"])
def test_elsewhere_without_token_is_a_config_error(address: str) -> None:
    with pytest.raises(ConfigError) as err:
        plan_admin(config(admin=address), "c.toml")
    assert (err.value.file, err.value.key) == ("c.toml", "burrow.admin")
    assert "admin_token" in err.value.fix


def test_token_and_token_file(tmp_path: Path) -> None:
    plan = plan_admin(config(admin=":9100", admin_token=TOKEN), "c.toml")
    assert plan is not None and (plan.host, plan.token) == ("0.0.0.0", TOKEN)
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    plan = plan_admin(config(admin=":9100", admin_token_file=str(path)), "c.toml")
    assert plan is not None and plan.token == TOKEN
    with pytest.raises(ConfigError, match="at least 16"):
        plan_admin(config(admin=":9100", admin_token="short"), "c.toml")
    with pytest.raises(ConfigError, match="cannot read") as err:
        plan_admin(config(admin=":9100", admin_token_file=str(tmp_path / "nope")), "c.toml")
    assert err.value.key == "burrow.admin_token_file"


def test_admin_port_must_not_be_a_listeners() -> None:
    entry = ListenSpec("web", "entrypoint", "tcp", Endpoint("", 8080))
    with pytest.raises(ConfigError, match="web's entrypoint") as err:
        plan_admin(config(admin="127.0.0.1:8080"), "c.toml", [entry])
    assert err.value.key == "burrow.admin"
    assert plan_admin(config(admin="127.0.0.1:9100"), "c.toml", [entry]) is not None


def test_off_by_default() -> None:
    assert plan_admin(Config(), "c.toml") is None


def test_redact_and_bearer() -> None:
    data = {"services": [{"handler": {"auth": {"username": "u", "password": "p"}}}],
            "burrow": {"admin_token": TOKEN}}  # fmt: skip
    out = redact(data)
    assert out["services"][0]["handler"]["auth"] == {"username": "u", "password": REDACTED}
    assert out["burrow"]["admin_token"] == REDACTED
    cluster = {"redis": "redis://u:pw-1@h:6379/0", "secret": "s" * 20, "sd_token": "t" * 20}
    assert redact({"burrow": {"cluster": cluster}})["burrow"]["cluster"] == {
        "redis": "redis://u:***@h:6379/0", "secret": REDACTED, "sd_token": REDACTED,
    }  # fmt: skip
    api = AdminApi(None, lambda: ("text/plain", b""), token=TOKEN)  # type: ignore[arg-type]
    assert api.answer("GET", "/healthz", None)[0] == 200
    assert api.answer("GET", "/metrics", None)[0] == 401
    assert api.answer("GET", "/metrics", f"Bearer {TOKEN}x")[0] == 401
    assert api.answer("GET", "/metrics", f"Bearer {TOKEN}")[0] == 200
    assert api.answer("GET", "/metrics", f"bearer {TOKEN}")[0] == 200
    assert api.answer("GET", "/metrics", f"Basic {TOKEN}")[0] == 401
    assert api.answer("POST", "/metrics", f"Bearer {TOKEN}")[0] == 405
