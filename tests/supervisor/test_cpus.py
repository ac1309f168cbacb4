"""Default worker count: cgroup CPU quota parsing (pure) and reading a cgroup tree."""

from __future__ import annotations

import os
from pathlib import Path

from burrow.common.cpus import (
    ancestors,
    cgroup_paths,
    parse_cfs,
    parse_cpu_max,
    quota_cpus,
    tightest,
)
from burrow.supervisor.cpus import cgroup_cpu_limit, usable_cpus


def test_cpu_max_lines() -> None:
    assert parse_cpu_max("max 100000\n") is None
    assert parse_cpu_max("150000 100000\n") == 2
    assert parse_cpu_max("100000 100000") == 1
    assert parse_cpu_max("20000 100000") == 1  # a fifth of a CPU still runs one worker
    assert parse_cpu_max("400000") == 4  # period defaults to 100 ms
    assert parse_cpu_max("") is None and parse_cpu_max("x y") is None
    assert parse_cfs("-1\n", "100000\n") is None
    assert parse_cfs("250000\n", "100000\n") == 3
    assert quota_cpus(1, 0) is None


def test_cgroup_membership_and_ancestors() -> None:
    text = "12:cpu,cpuacct:/docker/abc\n3:memory:/m\n0::/system.slice/burrow.service\nbad\n"
    assert cgroup_paths(text) == {
        "cpu": "/docker/abc",
        "cpuacct": "/docker/abc",
        "memory": "/m",
        "": "/system.slice/burrow.service",
    }
    assert ancestors("/a/b") == ["/a/b", "/a", "/"]
    assert ancestors("/") == ["/"]
    assert tightest([None, 4, 2]) == 2 and tightest([None]) is None


def _tree(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_v2_limit_is_the_tightest_up_the_tree(tmp_path: Path) -> None:
    _tree(
        tmp_path,
        {
            "proc-cgroup": "0::/a/b\n",
            "fs/cgroup.controllers": "cpu memory\n",
            "fs/a/cpu.max": "150000 100000\n",
            "fs/a/b/cpu.max": "max 100000\n",
        },
    )
    assert cgroup_cpu_limit(str(tmp_path / "fs"), str(tmp_path / "proc-cgroup")) == 2
    (tmp_path / "fs/a/cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_limit(str(tmp_path / "fs"), str(tmp_path / "proc-cgroup")) is None


def test_v1_cfs_quota(tmp_path: Path) -> None:
    _tree(
        tmp_path,
        {
            "proc-cgroup": "4:cpu,cpuacct:/x\n0::/\n",
            "fs/cpu,cpuacct/x/cpu.cfs_quota_us": "50000\n",
            "fs/cpu,cpuacct/x/cpu.cfs_period_us": "100000\n",
            "fs/cpu,cpuacct/cpu.cfs_quota_us": "-1\n",
            "fs/cpu,cpuacct/cpu.cfs_period_us": "100000\n",
        },
    )
    assert cgroup_cpu_limit(str(tmp_path / "fs"), str(tmp_path / "proc-cgroup")) == 1


def test_usable_cpus_follows_affinity() -> None:
    assert 1 <= usable_cpus() <= len(os.sched_getaffinity(0))
