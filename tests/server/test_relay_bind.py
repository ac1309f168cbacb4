"""SmuxConfigs: a relay server's smux settings per wire dialect, made once per plan."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import msgspec

from burrow.config.load import load_file
from burrow.config.plan import build_plans
from burrow.config.plan_types import RelayServerPlan
from burrow.server.relay_bind import SmuxConfigs, smux_config

CONFIG = """
services:
- name: relay
  addr: 127.0.0.1:0
  handler: {type: tunnel, metadata: {entryPoint: "127.0.0.1:0"}}
  listener: {type: tcp}
"""


def _plan(tmp_path: Path) -> RelayServerPlan:
    path = tmp_path / "server.yaml"
    path.write_text(CONFIG)
    (plan,) = build_plans(load_file(str(path)), source=str(path))
    assert isinstance(plan, RelayServerPlan)
    return plan


def test_one_config_per_dialect_equal_to_smux_config(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    configs = SmuxConfigs(plan)
    for dialect in ("relay", "tunnel"):
        got = configs.get(dialect)
        assert got == smux_config(plan, dialect)
        assert configs.get(dialect) is got  # made once, not per BIND
    assert configs.get("relay").version == 1 and configs.get("tunnel").version == 2


def test_a_reloaded_plan_gets_its_own_settings(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    old = SmuxConfigs(plan).get("tunnel")
    mux = dataclasses.replace(plan.mux, keepalive_interval=3.0, keepalive_timeout=9.0)
    new = SmuxConfigs(msgspec.structs.replace(plan, mux=mux)).get("tunnel")
    assert (old.keepalive_interval, new.keepalive_interval) == (10.0, 3.0)
    assert new.keepalive_timeout == 9.0
