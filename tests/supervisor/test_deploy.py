"""deploy/: the systemd units pass ``systemd-analyze verify``; the image exposes the example's
ports and the socket unit lists them."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from burrow.config.load import load_file
from burrow.config.plan import build_plans, listen_specs

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
INSTALLED = "/usr/local/bin/burrow"


def _example_ports() -> set[int]:
    path = DEPLOY / "burrow.example.toml"
    plans = build_plans(load_file(str(path)), source=str(path))
    return {spec.endpoint.port for spec in listen_specs(plans)}


def test_systemd_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze missing: install Debian's 'systemd' package (.ci/run does)"
    # verify insists that ExecStart's binary exists: check a copy pointing at this checkout's.
    burrow = shutil.which("burrow") or f"{sys.executable} -m burrow.supervisor"
    unit = (DEPLOY / "systemd/burrow.service").read_text()
    assert f"ExecStart={INSTALLED} " in unit
    (tmp_path / "burrow.service").write_text(unit.replace(INSTALLED, burrow))
    shutil.copy(DEPLOY / "systemd/burrow.socket", tmp_path / "burrow.socket")
    done = subprocess.run(
        [analyze, "verify", str(tmp_path / "burrow.service"), str(tmp_path / "burrow.socket")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr + done.stdout


def test_socket_unit_and_image_expose_the_example_ports() -> None:
    ports = _example_ports()
    assert ports == {8443, 80}
    socket_unit = (DEPLOY / "systemd/burrow.socket").read_text()
    assert {int(p) for p in re.findall(r"^ListenStream=(\d+)$", socket_unit, re.MULTILINE)} == ports
    assert not re.search(r"^ReusePort=", socket_unit, re.MULTILINE)
    dockerfile = (DEPLOY / "docker/Dockerfile").read_text()
    exposed = re.search(r"^EXPOSE (.+)$", dockerfile, re.MULTILINE)
    assert exposed is not None and {int(p) for p in exposed[1].split()} == ports
    assert 'CMD ["-C", "/etc/burrow/burrow.toml"]' in dockerfile
