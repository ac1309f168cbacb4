"""The CPUs this process may use: its affinity mask, capped by its cgroup's CPU quota.

``os.cpu_count()`` counts the host's CPUs; under ``taskset``, a container's ``--cpus`` or a
systemd ``CPUQuota=`` that starts far more workers than can run. The parsing is in
``burrow.common.cpus``; this module only reads the files.
"""

from __future__ import annotations

import os

from burrow.common.cpus import ancestors, cgroup_paths, parse_cfs, parse_cpu_max, tightest

CGROUP_ROOT = "/sys/fs/cgroup"
# cgroup v1 mounts the cpu controller under one of these names.
V1_CPU_DIRS = ("cpu", "cpu,cpuacct", "cpuacct,cpu")


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read(4096)
    except OSError:
        return None


def _v2_limit(path: str, root: str) -> int | None:
    limits = []
    for node in ancestors(path):
        text = _read(os.path.join(root, node.lstrip("/"), "cpu.max"))
        limits.append(parse_cpu_max(text) if text is not None else None)
    return tightest(limits)


def _v1_limit(path: str, root: str) -> int | None:
    for name in V1_CPU_DIRS:
        base = os.path.join(root, name)
        if not os.path.isdir(base):
            continue
        limits = []
        for node in ancestors(path):
            quota = _read(os.path.join(base, node.lstrip("/"), "cpu.cfs_quota_us"))
            period = _read(os.path.join(base, node.lstrip("/"), "cpu.cfs_period_us"))
            if quota is not None and period is not None:
                limits.append(parse_cfs(quota, period))
        return tightest(limits)
    return None


def cgroup_cpu_limit(root: str = CGROUP_ROOT, membership: str = "/proc/self/cgroup") -> int | None:
    """CPUs allowed by this process's cgroup (v2 ``cpu.max``, else v1 CFS quota); None if none.

    ``membership`` is the file naming the process's cgroups (``/proc/self/cgroup``).
    """
    text = _read(membership)
    if text is None:
        return None
    paths = cgroup_paths(text)
    limit = None
    if "" in paths and os.path.exists(os.path.join(root, "cgroup.controllers")):
        limit = _v2_limit(paths[""], root)
    if limit is None and "cpu" in paths:
        limit = _v1_limit(paths["cpu"], root)
    return limit


def usable_cpus() -> int:
    """len(sched_getaffinity), capped by the cgroup CPU quota; at least 1."""
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        count = os.cpu_count() or 1
    limit = cgroup_cpu_limit()
    if limit is not None:
        count = min(count, limit)
    return max(1, count)
