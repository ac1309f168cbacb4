"""Private runtime directory (mode 0700) for the supervisor's ipc:// endpoints."""

from __future__ import annotations

import os
import shutil
import tempfile

from burrow.config.errors import ConfigError

# AF_UNIX paths are limited to 108 bytes (sun_path); zmq refuses longer ipc:// endpoints.
MAX_SOCKET_PATH = 107
# The longest socket name put in a run directory, and the random part mkdtemp adds.
LONGEST_NAME = "registry"
_MKDTEMP_SUFFIX = 8


def runtime_base(configured: str | None) -> str:
    """Where run directories go: the configured dir, else systemd's $RUNTIME_DIRECTORY (the
    unit's ``RuntimeDirectory=``; the first if it names several), else $XDG_RUNTIME_DIR, else
    the temp dir."""
    if configured:
        return configured
    unit = os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
    if unit and os.path.isdir(unit):
        return unit
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isdir(xdg):
        return xdg
    return tempfile.gettempdir()


class RunDir:
    """A fresh 0700 directory owned by this supervisor; removed by :meth:`close`."""

    def __init__(self, base: str | None = None) -> None:
        root = runtime_base(base)
        longest = os.path.join(root, f"burrow-{os.getpid()}-{'x' * _MKDTEMP_SUFFIX}", LONGEST_NAME)
        if len(longest.encode()) > MAX_SOCKET_PATH:
            raise ConfigError(
                f"the runtime directory {root} is too deep for a unix socket path "
                f"({len(longest.encode())} > {MAX_SOCKET_PATH} bytes once a socket is in it)",
                fix="set [burrow] runtime_dir to a short path such as /run/burrow",
                key="burrow.runtime_dir",
            )
        os.makedirs(root, exist_ok=True)
        # mkdtemp creates the directory 0700 and with an unguessable name, so no other user can
        # pre-create or race our socket files.
        self.path: str = tempfile.mkdtemp(prefix=f"burrow-{os.getpid()}-", dir=root)
        os.chmod(self.path, 0o700)

    def endpoint(self, name: str) -> str:
        """The ``ipc://`` endpoint for a socket file called ``name`` in this directory."""
        path = os.path.join(self.path, name)
        if len(path.encode()) > MAX_SOCKET_PATH:
            raise OSError(
                f"runtime path too long for a unix socket: {path} (set a shorter runtime_dir)"
            )
        return f"ipc://{path}"

    def close(self) -> None:
        """Remove the directory and everything in it."""
        shutil.rmtree(self.path, ignore_errors=True)
