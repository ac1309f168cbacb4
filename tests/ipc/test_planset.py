"""PlanSet: planned once by the supervisor, carried as msgpack, decoded by workers unchanged."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from burrow.config.load import load_cli, load_file
from burrow.config.plan import build_plans
from burrow.config.plan_types import RelayServerPlan
from burrow.config.planset import PlanSet, decode_planset, encode_planset, make_planset

TUNNEL = "4d21094e-b74c-4916-86c1-d9fa36ea677b"


def test_round_trip_carries_inlined_rules_and_settings(tmp_path: Path) -> None:
    """Ingress file rules are read at planning; the decoded set needs no file."""
    rules = tmp_path / "rules.txt"
    rules.write_text(f"web.example {TUNNEL}\n# comment\nssh.example ${TUNNEL}\n")
    conf = tmp_path / "burrow.toml"
    conf.write_text(
        f"""
[burrow]
grace = 3.5
busy_poll_us = 50
[burrow.limits]
max_connections = 77
[[services]]
name = "srv"
addr = "127.0.0.1:8443"
handler = {{ type = "relay", metadata = {{ ingress = "in", entryPoint = "127.0.0.1:8080" }} }}
listener = {{ type = "tcp" }}
[[ingresses]]
name = "in"
file = {{ path = "{rules}" }}
"""
    )
    config = load_file(conf)
    data = encode_planset(make_planset(config, build_plans(config)))
    rules.unlink()  # workers never read it
    got = decode_planset(data)
    (server,) = got.servers
    assert isinstance(server, RelayServerPlan)
    assert server.ingress_rules == (("web.example", TUNNEL), ("ssh.example", f"${TUNNEL}"))
    assert got.settings.grace == 3.5
    assert got.settings.busy_poll_us == 50
    assert got.settings.limits.max_connections == 77
    assert got.clients == () and got.visitors == ()


def test_changed_names_only_the_services_that_differ() -> None:
    """The reload diff: same plans -> nothing; a visitor's new target -> only that visitor."""
    chain = [f"relay://127.0.0.1:8443?tunnelID={TUNNEL}"]

    def plans(target: str) -> PlanSet:
        config = load_cli(
            [f"tcp://127.0.0.1:2222/{target}", "tcp://127.0.0.1:2223/b.local:0"], chain
        )
        return make_planset(config, build_plans(config))

    before = plans("a.local:0")
    assert before.changed(plans("a.local:0")) == set()
    changed = before.changed(plans("c.local:0"))
    assert len(changed) == 1 and changed <= {p.name for p in before.visitors}


def test_garbage_is_refused() -> None:
    """A worker gets an error, not a half-built plan."""
    with pytest.raises(msgspec.ValidationError):
        decode_planset(msgspec.msgpack.encode({"servers": []}))
