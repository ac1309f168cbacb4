"""How many CPUs a process may use: pure parsing of cgroup files (the reading is the caller's).

cgroup v2 states a CPU limit as ``cpu.max`` (``"<quota> <period>"`` or ``"max <period>"``),
cgroup v1 as ``cpu.cfs_quota_us`` (``-1`` = none) and ``cpu.cfs_period_us``. A limit of 1.5 CPUs
means 2 busy workers can use it all, so the count rounds up; it is never below 1.
"""

from __future__ import annotations

import math


def quota_cpus(quota: int, period: int) -> int | None:
    """``ceil(quota / period)`` (at least 1), or None for no limit or a nonsensical pair."""
    if quota <= 0 or period <= 0:
        return None
    return max(1, math.ceil(quota / period))


def parse_cpu_max(text: str) -> int | None:
    """CPUs allowed by a cgroup v2 ``cpu.max`` line; None for ``max`` or anything unreadable."""
    parts = text.split()
    if not parts or parts[0] == "max":
        return None
    try:
        quota = int(parts[0])
        period = int(parts[1]) if len(parts) > 1 else 100_000
    except ValueError:
        return None
    return quota_cpus(quota, period)


def parse_cfs(quota_text: str, period_text: str) -> int | None:
    """CPUs allowed by cgroup v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``; None if unlimited."""
    try:
        return quota_cpus(int(quota_text.strip()), int(period_text.strip()))
    except ValueError:
        return None


def cgroup_paths(text: str) -> dict[str, str]:
    """``/proc/self/cgroup`` as {controller: path}; the v2 hierarchy's key is ``""``.

    Lines are ``<id>:<controllers>:<path>``; a v1 line may name several controllers
    (``3:cpu,cpuacct:/a``), each gets the path.
    """
    out: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3 or not parts[2].startswith("/"):
            continue
        _, controllers, path = parts
        for name in controllers.split(",") if controllers else [""]:
            out.setdefault(name, path)
    return out


def ancestors(path: str) -> list[str]:
    """``/a/b`` -> ``["/a/b", "/a", "/"]``: a parent's limit caps every child."""
    parts = [p for p in path.split("/") if p and p != ".."]
    return ["/" + "/".join(parts[:i]) if i else "/" for i in range(len(parts), -1, -1)]


def tightest(limits: list[int | None]) -> int | None:
    """The smallest stated limit, or None when none is stated."""
    stated = [n for n in limits if n is not None]
    return min(stated) if stated else None
