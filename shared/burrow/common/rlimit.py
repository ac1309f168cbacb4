"""Raise the open-files soft limit to the hard limit at start (supervisor and workers).

Distributions still ship a soft RLIMIT_NOFILE of 1024 while the hard limit is far higher; a
proxy holds two descriptors per routed connection, so 1024 runs out at about 500 visitors.
gost does the same at start.
"""

from __future__ import annotations

import resource


def raise_nofile() -> tuple[int, int]:
    """Set the soft RLIMIT_NOFILE to the hard limit; returns ``(before, after)`` soft limits."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft == hard:
        return soft, soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        return soft, soft
    return soft, hard
