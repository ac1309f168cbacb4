"""SIGHUP with changed [burrow.cluster] settings: the services reload, the membership says it
needs a restart."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from burrow.config.load import load_file
from burrow.supervisor.reload import Reloaded
from burrow.supervisor.run import _Reloader

NODE = """
[[services]]
name = "relay"
addr = "127.0.0.1:0"
handler = {{ type = "relay", metadata = {{ entryPoint = "127.0.0.1:0", ingress = "web" }} }}
listener = {{ type = "tcp" }}

[[ingresses]]
name = "web"
rules = [{{ hostname = "a.example", endpoint = "4d21094e-b74c-4916-86c1-d9fa36ea677b" }}]

[burrow.cluster]
redis = "redis://127.0.0.1:6379/0"
node = "{node}"
advertise = "127.0.0.2:8443"
secret = "0123456789abcdef0123"
"""


def test_cluster_changes_on_reload_are_flagged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "node.toml"
    path.write_text(NODE.format(node="edge-1"))
    reloader = _Reloader(str(path), load_file(str(path)))
    with caplog.at_level(logging.WARNING, logger="burrow.supervisor"):
        assert isinstance(reloader(), Reloaded)
        assert not [r for r in caplog.records if r.getMessage() == "reload.cluster_unchanged"]
        path.write_text(NODE.format(node="edge-2"))
        assert isinstance(reloader(), Reloaded)
    (record,) = [r for r in caplog.records if r.getMessage() == "reload.cluster_unchanged"]
    assert "restart" in str(record.__dict__)
