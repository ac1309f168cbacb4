"""[burrow.cluster] planning: off without redis; node, advertise and secret checked when on."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from burrow.config.cluster import plan_cluster
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
        ({"advertise": "127.0.0.2:0"}, "burrow.cluster.advertise"),
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
