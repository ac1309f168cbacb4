"""``python -m burrow.supervisor.solo --spec-fd N [-- ARGS]``: the image one-process burrow execs.

oneproc.py has bound the listeners and planned the config, then replaces its own image with
this one (same pid, same stdout/stderr, same systemd notify socket), so the config loaders,
argparse and the planning garbage of the first image are gone. This image reads the SoloSpec
from the spec fd, takes over the listening fds and runs the worker's standalone runner; the
config loaders come back only if a SIGHUP needs them.
"""

from __future__ import annotations

import logging
import os
import socket
import sys

from burrow.common.exitcodes import ExitCode
from burrow.common.logfmt import event, setup_logging
from burrow.common.rlimit import raise_nofile

from .oneproc import SoloSpec, decode_solo_spec, serve

log = logging.getLogger("burrow.supervisor")


def _sockets(spec: SoloSpec) -> dict[tuple[str, str, str], list[socket.socket]]:
    out: dict[tuple[str, str, str], list[socket.socket]] = {}
    for lf in spec.listeners:
        os.set_inheritable(lf.fd, False)  # nothing this process starts may hold them
        sock = socket.socket(fileno=lf.fd)
        out.setdefault((lf.service, lf.role, lf.network), []).append(sock)
    return out


def main(argv: list[str] | None = None) -> int:
    """Serve the spec's plans in this process; returns the exit code."""
    args = sys.argv[1:] if argv is None else argv
    if "--" in args:
        args = args[: args.index("--")]  # the user's arguments, for ps only
    if len(args) != 2 or args[0] != "--spec-fd" or not args[1].isdigit():
        sys.stderr.write("usage: python -m burrow.supervisor.solo --spec-fd N (burrow runs it)\n")
        return ExitCode.USAGE
    try:
        with os.fdopen(int(args[1]), "rb") as fh:
            spec = decode_solo_spec(fh.read())
    except Exception as exc:  # noqa: BLE001 - any failure here means nothing can start
        sys.stderr.write(f"burrow: cannot read the one-process spec: {exc}\n")
        return ExitCode.SOFTWARE
    setup_logging(spec.log_level, spec.log_format, process="main")
    raise_nofile()
    sockets = _sockets(spec)
    try:
        return serve(spec, sockets)
    finally:
        for socks in sockets.values():
            for sock in socks:
                sock.close()
        event(log, logging.DEBUG, "supervisor.exit", mode="one-process")


if __name__ == "__main__":
    sys.exit(main())
