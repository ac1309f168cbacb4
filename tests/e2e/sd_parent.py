"""A socket-activation parent for the e2e tests, doing what systemd does for ``burrow.socket``.

    python3 sd_parent.py --uid 65534 --port P [--reuseport] -- <burrow argv...>

Creates, binds and listens ``[::]:P`` with IPV6_V6ONLY off (``ListenStream=P`` on an IPv6 host,
``BindIPv6Only=both``) while its effective uid is ``--uid``, so the socket's owner is that user,
as when systemd (root) binds for a service that runs as another (``DynamicUser=``). Then it
forks; the child moves the socket to fd 3, sets ``LISTEN_FDS=1`` and ``LISTEN_PID`` to its own
pid and execs the command, so LISTEN_PID names the burrow process. Run as root. The parent waits
for the child and exits with its status; signals sent to the process group reach both.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys

SD_LISTEN_FDS_START = 3


def bind_as(uid: int, port: int, reuseport: bool) -> socket.socket:
    """The listening socket, created while the effective uid is ``uid``."""
    os.seteuid(uid)
    try:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuseport:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(("::", port))
        sock.listen(128)
    finally:
        os.seteuid(0)
    return sock


def main() -> int:
    """Bind, fork, exec the command in the child with LISTEN_FDS; wait for it."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--uid", type=int, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--reuseport", action="store_true")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    sock = bind_as(args.uid, args.port, args.reuseport)
    pid = os.fork()
    if pid == 0:
        try:
            if sock.fileno() != SD_LISTEN_FDS_START:
                os.dup2(sock.fileno(), SD_LISTEN_FDS_START)
            os.set_inheritable(SD_LISTEN_FDS_START, True)
            env = dict(os.environ, LISTEN_FDS="1", LISTEN_PID=str(os.getpid()))
            os.execvpe(command[0], command, env)
        finally:
            os._exit(127)
    sock.close()
    # The group's SIGTERM is for burrow to drain on; this process just waits for it.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) & 0xFF


if __name__ == "__main__":
    sys.exit(main())
