"""One owner per address: refuse to join a port another process already serves.

Every Burrow socket is SO_REUSEPORT (one per worker), so a second Burrow started on the same port
would silently join the first one's group and the kernel would split connections between them.
Before binding a group, the supervisor binds a probe socket *without* SO_REUSEPORT to the same
address: EADDRINUSE means someone else serves it. The TCP probe sets SO_REUSEADDR, so leftover
TIME_WAIT connections of a previous run do not count; the UDP probe sets neither (SO_REUSEADDR
lets UDP sockets share a port).

Two Burrows starting at the same instant could both pass the probe before either binds, so the
probe and the bind happen under an flock on ``burrow-<network>-<port>.lock`` in /run/lock (else
the temp dir), keyed by port alone so that overlapping addresses (``:8443`` and
``127.0.0.1:8443``) serialise too. The lock is held only while binding: once the group is bound,
the probe of a later instance fails by itself, and the file is removed on release. The lock is
best effort: if no lock file can be opened, the probe alone decides.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
import tempfile
import time
from collections.abc import Iterator

LOCK_DIRS = ("/run/lock", tempfile.gettempdir())
# Another instance holds the lock only for the few milliseconds its bind takes.
LOCK_WAIT = 5.0
LOCK_RETRY = 0.01


def _open_lock(path: str) -> int | None:
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(2):
        try:
            # Open an existing file without O_CREAT: fs.protected_regular refuses O_CREAT on
            # another user's file in a sticky directory, a plain read-only open is allowed.
            return os.open(path, flags)
        except FileNotFoundError:
            pass
        except OSError:
            return None
        try:
            return os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            continue  # created between our two opens
        except OSError:
            return None
    return None


def _lock_path(network: str, port: int, dirs: tuple[str, ...]) -> str | None:
    for folder in dirs:
        if os.path.isdir(folder) and os.access(folder, os.W_OK | os.X_OK):
            return os.path.join(folder, f"burrow-{network}-{port}.lock")
    return None


def _still_linked(fd: int, path: str) -> bool:
    """Whether the locked file is still the one at ``path`` (a releasing holder unlinks it)."""
    try:
        here, there = os.fstat(fd), os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _acquire(path: str, deadline: float) -> int | None:
    """An fd holding the flock on ``path``, or None (no file, or a holder past the deadline)."""
    while True:
        fd = _open_lock(path)
        if fd is None:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if time.monotonic() >= deadline:
                return None  # a stuck holder: fall back to the probe alone
            time.sleep(LOCK_RETRY)
            continue
        except OSError:
            os.close(fd)
            return None
        if _still_linked(fd, path):
            return fd
        os.close(fd)  # locked a file its holder removed on release: take the new one


@contextlib.contextmanager
def port_lock(network: str, port: int, dirs: tuple[str, ...] | None = None) -> Iterator[bool]:
    """Hold the lock for ``network``/``port`` (nothing for port 0); yields whether it is held.

    ``dirs``: where the lock file may go, first usable wins (default LOCK_DIRS). The holder
    removes the file before it lets go, so lock files do not pile up; a waiter that then locks
    the removed file notices and starts over.
    """
    path = _lock_path(network, port, LOCK_DIRS if dirs is None else dirs) if port else None
    fd = _acquire(path, time.monotonic() + LOCK_WAIT) if path is not None else None
    try:
        yield fd is not None
    finally:
        if fd is not None and path is not None:
            with contextlib.suppress(OSError):
                os.unlink(path)  # another user's file in a sticky dir stays; harmless
            os.close(fd)  # releases the flock


def set_dual_stack(sock: socket.socket, host: str) -> None:
    """``::`` serves IPv4 too (IPV6_V6ONLY off, whatever net.ipv6.bindv6only says), as Go does."""
    if sock.family == socket.AF_INET6 and host == "::":
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)


def address_taken(family: int, sock_type: int, host: str, port: int) -> bool:
    """True when a bind without SO_REUSEPORT to ``host:port`` fails with EADDRINUSE.

    Other errors (EADDRNOTAVAIL, EACCES) are left for the real bind to report.
    """
    with socket.socket(family, sock_type) as probe:
        if sock_type == socket.SOCK_STREAM:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        set_dual_stack(probe, host)
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False
