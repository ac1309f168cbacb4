"""has_headroom: the constant-cost probe the out-of-descriptors watch runs every tick."""

from __future__ import annotations

import fcntl
import os
import resource

from burrow.net.fdwatch import MARGIN, has_headroom


def is_open(fd: int) -> bool:
    try:
        fcntl.fcntl(fd, fcntl.F_GETFD)
    except OSError:
        return False
    return True


def fds() -> list[int]:
    """Open descriptors (the listing's own one is closed by now and drops out)."""
    return sorted(fd for fd in map(int, os.listdir("/proc/self/fd")) if is_open(fd))


def test_headroom_probe_says_whether_more_than_margin_descriptors_are_free() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    before = fds()
    top = max(before) + 1  # every open descriptor is below this
    try:
        for extra in range(MARGIN + 3):
            limit = top + extra
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
            free = limit - len([fd for fd in before if fd < limit])
            # The watch's condition: more than MARGIN numbers free <=> not exhausted.
            assert has_headroom(MARGIN + 1) == (free >= MARGIN + 1), (limit, free)
            assert fds() == before  # the probe closed everything it opened
        hole = next(n for n in range(top + 1) if n not in before)  # 0..hole-1 all open
        resource.setrlimit(resource.RLIMIT_NOFILE, (hole, hard))
        none_free = has_headroom(1)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert not none_free and fds() == before
