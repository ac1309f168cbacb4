"""Worker zygote: forked from the supervisor at start, or ``python -S -m burrow.worker.zygote``.

The supervisor forks it (``run_forked``) while it is still single-threaded, before its zmq
context, admin thread or any listener exists, so the zygote, and every worker forked from it,
shares the supervisor's interpreter and modules copy-on-write; where the supervisor already has
threads it execs this module instead (``main``). Either way the zygote imports the worker stack,
freezes the GC (so collections in the workers do not write to, and unshare, the imported
objects' pages) and then forks one worker per request (BENCHMARKS.md, memory, third and fourth
passes).

A request on the control socket (AF_UNIX SOCK_SEQPACKET) carries the worker's fds
(SCM_RIGHTS) and the numbers they must have in the worker (``pass_fds`` semantics: the
WorkerSpec names them), the first being the spec pipe. The zygote double-forks so the worker
becomes the supervisor's child (it is a subreaper) and answers with the worker's pid, or 0.
EOF on the control socket (the supervisor went away) ends the zygote.
"""

from __future__ import annotations

import array
import fcntl
import gc
import logging
import os
import signal
import socket
import sys
from typing import NoReturn

MAX_FDS = 64  # lifeline, spec, mesh (inbox + outboxes of up to ~60 workers), listeners
PID_BYTES = 8


def preload() -> None:
    """Import what a worker imports, including its lazy imports, so forks share them."""
    import asyncio  # noqa: F401

    import msgspec  # noqa: F401
    import uvloop  # noqa: F401
    import zmq  # noqa: F401

    import burrow.client.tunnel
    import burrow.client.udp_visitor
    import burrow.client.visitor
    import burrow.server.entrypoint
    import burrow.server.forward
    import burrow.server.relay_server
    import burrow.worker.app
    import burrow.worker.main  # noqa: F401


def place_fds(fds: list[int], targets: list[int]) -> None:
    """Give ``fds[i]`` the number ``targets[i]`` and close every other fd above stderr."""
    floor = max([*fds, *targets, 2]) + 1
    moved = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, floor) for fd in fds]
    for fd in fds:
        os.close(fd)
    for fd, target in zip(moved, targets, strict=True):
        os.dup2(fd, target, inheritable=True)
        os.close(fd)
    close_fds_but({0, 1, 2, *targets})


def fork_worker(ctl: socket.socket, fds: list[int], targets: list[int]) -> int:
    """Fork a worker with ``fds`` at ``targets``: its pid here, -1 in the worker itself."""
    rfd, wfd = os.pipe()
    child = os.fork()
    if child == 0:  # the intermediate: fork the worker, report its pid, exit
        worker = -1
        try:
            os.close(rfd)
            worker = os.fork()
            if worker == 0:
                os.close(wfd)
                ctl.close()
                place_fds(fds, targets)
                signal.signal(signal.SIGINT, signal.default_int_handler)
                return -1
            os.write(wfd, worker.to_bytes(PID_BYTES, "little"))
        finally:
            if worker != 0:
                os._exit(0)  # the intermediate ends here, whatever happened
    os.close(wfd)
    try:
        data = os.read(rfd, PID_BYTES)
    finally:
        os.close(rfd)
        os.waitpid(child, 0)  # once it is gone, the worker's parent is the supervisor
    return int.from_bytes(data, "little") if len(data) == PID_BYTES else 0


def serve(ctl: socket.socket) -> int | None:
    """Fork workers on request; returns a worker's spec fd in the worker, None at EOF."""
    while True:
        msg, fds, _flags, _addr = socket.recv_fds(ctl, 4096, MAX_FDS)
        if not msg:
            return None
        targets = array.array("i")
        targets.frombytes(msg[: len(msg) - len(msg) % targets.itemsize])
        pid = 0
        if len(targets) == len(fds) and fds:
            pid = fork_worker(ctl, list(fds), list(targets))
            if pid == -1:
                return targets[0]
        for fd in fds:
            os.close(fd)
        ctl.send(pid.to_bytes(PID_BYTES, "little"))


def close_fds_but(keep: set[int]) -> None:
    """Close every fd not in ``keep`` (what a fork inherited that the zygote must not hold)."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass  # the listdir's own fd, already closed


def run_forked(ctl: socket.socket) -> NoReturn:
    """The zygote in a child forked from the supervisor; never returns into the caller.

    The child is still inside the supervisor's call stack: leaving it by an exception or a
    return would run the supervisor's own clean-up, so every way out is ``os._exit``.
    """
    code = 70  # EX_SOFTWARE, should anything below raise
    try:
        close_fds_but({0, 1, 2, ctl.fileno()})
        code = _run(ctl)
    except SystemExit as exc:
        code = 0 if exc.code is None else exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - reported, then the process ends, whatever it was
        import traceback

        traceback.print_exc()
    finally:
        # What interpreter shutdown would do for an exec'd worker: flush the log handlers.
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)


def main(argv: list[str] | None = None) -> int:
    """Run the exec'd zygote; in a forked worker, run the worker and return its exit code."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] != "--control-fd":
        sys.stderr.write("usage: burrow-zygote --control-fd N\n")
        return 2
    return _run(socket.socket(fileno=int(args[1])))


def _run(ctl: socket.socket) -> int:
    from burrow.worker.main import name_process

    name_process("burrow-zygote")
    # Ctrl-C reaches the whole process group; the supervisor ends the zygote (EOF), not it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    preload()
    gc.collect()
    gc.freeze()
    spec_fd = serve(ctl)
    if spec_fd is None:
        return 0
    from burrow.worker.main import main as worker_main  # imported by preload() already

    return worker_main(["--spec-fd", str(spec_fd)])


if __name__ == "__main__":
    sys.exit(main())
