"""Lifeline: exit with the supervisor (gunicorn's parent-pid check, done without polling).

The supervisor keeps the write end of a pipe for its whole life and never writes to it; the
worker watches the read end. When the supervisor dies, for whatever reason including SIGKILL,
the kernel closes the write end and the read end becomes readable with EOF.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

# Bytes drained per wakeup if a confused writer ever sends data down the lifeline.
MAX_READ = 4096


def watch_lifeline(loop: asyncio.AbstractEventLoop, fd: int, on_eof: Callable[[], None]) -> None:
    """Call ``on_eof`` once, from ``loop``, when the pipe's write end is gone."""
    os.set_blocking(fd, False)

    def readable() -> None:
        try:
            data = os.read(fd, MAX_READ)
        except BlockingIOError:
            return
        except OSError:
            data = b""  # a broken lifeline means the same as a closed one
        if data:
            return
        loop.remove_reader(fd)
        os.close(fd)
        on_eof()

    loop.add_reader(fd, readable)
