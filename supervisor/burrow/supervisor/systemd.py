"""systemd integration: sd_notify states and socket activation (LISTEN_FDS)."""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import MutableMapping

from burrow.common.logfmt import event

log = logging.getLogger("burrow.supervisor")

SD_LISTEN_FDS_START = 3
# systemd itself caps FileDescriptorStoreMax far below this; it only guards a garbage env.
MAX_LISTEN_FDS = 4096


def listen_fds(environ: MutableMapping[str, str] | None = None, *, unset: bool = True) -> list[int]:
    """The fds systemd passed us (empty unless LISTEN_PID is our pid); marks them CLOEXEC."""
    env = os.environ if environ is None else environ
    try:
        pid = int(env.get("LISTEN_PID", ""))
        count = int(env.get("LISTEN_FDS", ""))
    except ValueError:
        return []
    if pid != os.getpid() or count <= 0:
        return []
    if count > MAX_LISTEN_FDS:
        raise ValueError(f"LISTEN_FDS={count} exceeds {MAX_LISTEN_FDS}")
    if unset:
        # Our children must not believe the sockets are theirs (sd_listen_fds(unset_environment=1)).
        for key in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
            env.pop(key, None)
    fds = []
    for fd in range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + count):
        try:
            os.set_inheritable(fd, False)
        except OSError as exc:
            event(log, logging.WARNING, "systemd.bad_fd", fd=fd, error=exc.strerror or str(exc))
            continue
        fds.append(fd)
    return fds


def sd_notify(state: str, environ: MutableMapping[str, str] | None = None) -> bool:
    """Send ``state`` (e.g. "READY=1") to $NOTIFY_SOCKET; False when not under systemd."""
    env = os.environ if environ is None else environ
    addr = env.get("NOTIFY_SOCKET")
    if not addr:
        return False
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(state.encode(), addr)
    except OSError:
        return False
    return True


def notify_reloading(environ: MutableMapping[str, str] | None = None) -> bool:
    """RELOADING=1 with the MONOTONIC_USEC that ``Type=notify-reload`` (systemd 253+) requires."""
    return sd_notify(f"RELOADING=1\nMONOTONIC_USEC={time.monotonic_ns() // 1000}", environ)
