"""Planning what forwards need: the internal listener on the first server, a plain-TCP relay."""

from __future__ import annotations

import msgspec
import pytest

from burrow.config.errors import ConfigError
from burrow.config.load import load_cli
from burrow.config.plan import build_plans, listen_specs
from burrow.config.plan_types import RelayServerPlan
from burrow.config.schema import ClusterSettings, Config

TID = "4d21094e-b74c-4916-86c1-d9fa36ea677b"
CLUSTER = {"redis": "redis://127.0.0.1:6379/0", "node": "edge-1",
           "advertise": "127.0.0.2:8443", "secret": "0123456789abcdef0123"}  # fmt: skip


def with_cluster(config: Config, **more: str) -> Config:
    cluster = msgspec.convert({**CLUSTER, **more}, ClusterSettings)
    burrow = msgspec.structs.replace(config.burrow, cluster=cluster)
    return msgspec.structs.replace(config, burrow=burrow)


def server(listener: str = "relay") -> Config:
    return load_cli(
        [f"{listener}://127.0.0.2:8443?entryPoint=127.0.0.2:80&tunnel=a.test:{TID}"], []
    )


def test_internal_listener_goes_to_the_first_server() -> None:
    plans = build_plans(with_cluster(server(), internal="127.0.0.2:8081"))
    (plan,) = plans
    assert isinstance(plan, RelayServerPlan)
    assert str(plan.internal) == "127.0.0.2:8081"
    roles = [(s.role, str(s.endpoint)) for s in listen_specs(plans)]
    assert ("internal", "127.0.0.2:8081") in roles


def test_internal_without_a_server_is_an_error() -> None:
    visitor = load_cli(
        ["tcp://127.0.0.1:2222/a.test:22"], [f"relay://127.0.0.1:8443?tunnelID={TID}"]
    )
    with pytest.raises(ConfigError) as err:
        build_plans(with_cluster(visitor, internal="127.0.0.2:8081"))
    assert err.value.key == "burrow.cluster.internal"


def test_a_cluster_node_needs_a_plain_tcp_relay_port() -> None:
    tls = load_cli([f"relay+tls://127.0.0.2:8443?entryPoint=127.0.0.2:80&tunnel=a.test:{TID}"], [])
    with pytest.raises(ConfigError) as err:
        build_plans(with_cluster(tls))
    assert err.value.key == "burrow.cluster.advertise"
    assert "plain TCP" in err.value.fix
    build_plans(with_cluster(server()))  # plain TCP: fine
