"""Out-of-descriptors warning: libuv drops new connections silently when accept() hits EMFILE.

libuv keeps a spare descriptor: on EMFILE it closes it, accepts and closes the pending
connections, and reopens it, so the loop neither spins nor stops serving the connections it
has. Nothing reaches Python, so this watch counts the worker's descriptors every ``interval``
and logs (at most once per ``quiet`` seconds) while they are at the soft limit.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import resource

from burrow.common.logfmt import event

log = logging.getLogger("burrow.fd")

INTERVAL = 2.0
QUIET = 10.0
# Within this many descriptors of the limit counts as exhausted (accepts are failing by then).
MARGIN = 4


def open_fds() -> int:
    """Descriptors this process has open."""
    return len(os.listdir("/proc/self/fd")) - 1  # the listing's own descriptor


def has_headroom(n: int) -> bool:
    """Whether ``n`` more descriptors can be opened now (opens and closes them).

    A constant cost: listing /proc/self/fd every tick grew with the connections held (2 ms a
    tick at 5,000 tunnels). The loop is single-threaded, so nothing else opens meanwhile."""
    fds: list[int] = []
    try:
        fds.append(os.open(os.devnull, os.O_RDONLY))
        while len(fds) < n:
            fds.append(os.dup(fds[0]))
        return True
    except OSError as exc:
        if exc.errno not in (errno.EMFILE, errno.ENFILE):
            raise
        return False
    finally:
        for fd in fds:
            os.close(fd)


async def watch_fds(interval: float = INTERVAL, quiet: float = QUIET) -> None:
    """Until cancelled: log ``worker.fd_exhausted`` while at the RLIMIT_NOFILE soft limit."""
    loop = asyncio.get_running_loop()
    last = -quiet
    while True:
        await asyncio.sleep(interval)
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if soft == resource.RLIM_INFINITY:
            continue
        try:
            if has_headroom(MARGIN + 1):
                continue  # more than MARGIN free: not exhausted (the listing below is O(fds))
            used = open_fds()
        except OSError as exc:
            # Listing needs a descriptor of its own: failing for want of one is the answer.
            if exc.errno not in (errno.EMFILE, errno.ENFILE):
                continue
            used = soft
        now = loop.time()
        if used >= soft - MARGIN and now - last >= quiet:
            last = now
            event(
                log,
                logging.WARNING,
                "worker.fd_exhausted",
                open=used,
                limit=soft,
                effect="new connections are dropped; open ones keep working",
            )
