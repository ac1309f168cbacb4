"""[burrow.cluster] planning: off without redis; node, advertise and secret checked when on."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from burrow.config.cluster import plan_cluster, redis_label
from burrow.config.errors import ConfigError
from burrow.config.schema import BurrowSettings, ClusterSettings, Config

SECRET = "0123456789abcdef0123"


def config(**cluster: object) -> Config:
    return Config(burrow=BurrowSettings(cluster=msgspec.convert(cluster, ClusterSettings)))


def full(**over: object) -> Config:
    base: dict[str, object] = {
        "redis": "redis://127.0.0.1:6379/0",
        "node": "edge-1",
        "advertise": "127.0.0.2:8443",
        "secret": SECRET,
    }
    base.update(over)
    return config(**{k: v for k, v in base.items() if v is not None})


def test_off_without_redis() -> None:
    assert plan_cluster(config(), "c.toml") is None


def test_a_whole_table_plans_and_hides_its_secret() -> None:
    plan = plan_cluster(full(advertise="[::1]:8443", ttl=30), "c.toml")
    assert plan is not None
    assert (plan.node, plan.advertise_host, plan.advertise_port, plan.ttl) == (
        "edge-1",
        "::1",
        8443,
        30.0,
    )
    assert plan.advertise == "[::1]:8443"
    assert SECRET not in repr(plan)


def test_secret_file(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text(SECRET + "\n")
    plan = plan_cluster(full(secret=None, secret_file=str(path)), "c.toml")
    assert plan is not None and plan.secret == SECRET


@pytest.mark.parametrize(
    ("over", "key"),
    [
        ({"node": None}, "burrow.cluster.node"),
        ({"node": "bad name"}, "burrow.cluster.node"),
        ({"advertise": None}, "burrow.cluster.advertise"),
        ({"advertise": "0.0.0.0:8443"}, "burrow.cluster.advertise"),
        ({"sd_listen": "10.0.0.5:9100"}, "burrow.cluster.sd_token"),
        ({"sd_listen": "127.0.0.1:9100", "sd_token": "short"}, "burrow.cluster.sd_token"),
        ({"sd_token": SECRET}, "burrow.cluster.sd_token"),
        ({"sd_listen": "nope"}, "burrow.cluster.sd_listen"),
        ({"advertise": "::1:8443"}, "burrow.cluster.advertise"),
        ({"secret": None}, "burrow.cluster.secret"),
        ({"secret": "short"}, "burrow.cluster.secret"),
        ({"secret_file": "/nonexistent/secret"}, "burrow.cluster.secret_file"),
        ({"redis": "http://127.0.0.1:6379"}, "burrow.cluster.redis"),
    ],
)
def test_bad_settings_name_the_key_and_a_fix(over: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        plan_cluster(full(**over), "c.toml")
    assert (err.value.file, err.value.key) == ("c.toml", key)
    assert err.value.fix
    assert SECRET not in str(err.value)


def test_cluster_keys_without_redis_are_an_error() -> None:
    with pytest.raises(ConfigError) as err:
        plan_cluster(config(node="edge-1"), "c.toml")
    assert err.value.key == "burrow.cluster.node"


def test_advertise_port_zero_is_left_for_the_supervisor_to_resolve() -> None:
    plan = plan_cluster(full(advertise="127.0.0.2:0"), "c.toml")
    assert plan is not None and (plan.advertise_host, plan.advertise_port) == ("127.0.0.2", 0)


def test_sd_api_settings_and_a_redacted_token() -> None:
    token = "sd-token-0123456789abcdef"
    plan = plan_cluster(full(sd_listen="10.0.0.5:9100", sd_token=token), "c.toml")
    assert plan is not None
    assert (plan.sd_host, plan.sd_port, plan.sd_token) == ("10.0.0.5", 9100, token)
    assert token not in repr(plan)
    loop = plan_cluster(full(sd_listen="127.0.0.1:0"), "c.toml")
    assert loop is not None and (loop.sd_host, loop.sd_port, loop.sd_token) == (
        "127.0.0.1",
        0,
        None,
    )


def test_redis_passwords_stay_out_of_labels_and_repr() -> None:
    assert redis_label("redis://u:pw-123@10.0.0.9:6379/0") == "redis://u:***@10.0.0.9:6379/0"
    assert redis_label("rediss://:pw-123@h:6380") == "rediss://:***@h:6380"
    assert redis_label("unix:///run/redis.sock") == "unix:///run/redis.sock"
    plan = plan_cluster(full(redis="redis://u:pw-123@10.0.0.9:6379/0"), "c.toml")
    assert plan is not None and "pw-123" not in repr(plan)
