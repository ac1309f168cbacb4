"""The supervisor's handle on the worker zygote (``burrow.worker.zygote``).

``Zygote.fork_here`` forks it from the supervisor while the supervisor is one thread (before its
zmq context, admin thread and listeners), so the workers share the supervisor's interpreter
and modules copy-on-write; ``Zygote.start`` execs it like a worker (``python -S``, no fds but
its control socket) for a supervisor that already has threads. A worker forked by it is
re-parented to the supervisor (PR_SET_CHILD_SUBREAPER), which waits for it and watches its
pidfd exactly like an exec'd one. Any failure of the zygote makes ``fork`` raise OSError; the
caller then execs the worker instead and drops the zygote.
"""

from __future__ import annotations

import array
import ctypes
import gc
import importlib
import os
import select
import socket
import subprocess
import sys

from .spawn import python_command

ZYGOTE_MODULE = "burrow.worker.zygote"
PR_SET_CHILD_SUBREAPER = 36
PID_BYTES = 8
ANSWER_TIMEOUT = 10.0  # a fork takes milliseconds; this only bounds a wedged zygote


def become_subreaper() -> bool:
    """Make orphaned descendants (the zygote's workers) this process's children."""
    libc = ctypes.CDLL(None, use_errno=True)
    return bool(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)


class ForkedChild:
    """A worker forked by the zygote: the part of ``subprocess.Popen`` the supervisor uses."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def wait(self, timeout: float | None = None) -> int:
        """Reap the child (ours, perhaps re-parented); Popen's sign convention and timeout."""
        if self.returncode is None:
            if timeout is not None:
                pidfd = os.pidfd_open(self.pid)
                try:
                    if not select.select([pidfd], [], [], timeout)[0]:
                        raise subprocess.TimeoutExpired(str(self.pid), timeout)
                finally:
                    os.close(pidfd)
            _pid, status = os.waitpid(self.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        """Signal the child, unless already reaped (the pid could be someone else's by then)."""
        if self.returncode is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        """SIGKILL, unless already reaped."""
        self.send_signal(9)


class Zygote:
    """A running zygote and the supervisor's end of its control socket."""

    def __init__(self, popen: subprocess.Popen[bytes] | ForkedChild, ctl: socket.socket) -> None:
        self.popen = popen
        self.ctl = ctl
        self.failed = False

    @classmethod
    def start(cls) -> Zygote:
        """Exec the zygote; raises OSError if it cannot start or we cannot adopt its forks."""
        if not become_subreaper():
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            argv, env = python_command(ZYGOTE_MODULE, ["--control-fd", str(theirs.fileno())])
            popen = subprocess.Popen(
                argv, env=env, pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.settimeout(ANSWER_TIMEOUT)
        return cls(popen, ours)

    @classmethod
    def fork_here(cls) -> Zygote:
        """Fork the zygote from this process; raises OSError unless it is one thread.

        A fork copies only the calling thread: a zmq I/O thread or the admin thread would be
        missing in the child, perhaps holding a lock, so that case is refused (use ``start``).
        The GC is frozen first, so the supervisor's own collections do not write to, and
        unshare, the pages the workers share with it.
        """
        threads = len(os.listdir("/proc/self/task"))
        if threads != 1:
            raise OSError(f"this process already runs {threads} threads")
        if not become_subreaper():
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        for stream in (sys.stdout, sys.stderr):
            stream.flush()  # else the child's copy of a buffer would be written twice
        gc.collect()
        gc.freeze()
        try:
            pid = os.fork()
        except BaseException:
            ours.close()
            theirs.close()
            raise
        if pid == 0:  # the zygote: never returns from here
            ours.close()
            # By name, as the exec'd zygote is started: from here on this process is worker
            # side, and the supervisor's modules import no worker package (tests/arch).
            importlib.import_module(ZYGOTE_MODULE).run_forked(theirs)
            os._exit(70)  # unreachable: run_forked always ends the process
        theirs.close()
        ours.settimeout(ANSWER_TIMEOUT)
        return cls(ForkedChild(pid), ours)

    def fork(self, spec_fd: int, fds: list[int]) -> ForkedChild:
        """A worker holding ``spec_fd`` and ``fds`` under the same numbers (``pass_fds``)."""
        allfds = [spec_fd, *fds]
        if self.failed:
            raise OSError("the worker zygote is closed")
        socket.send_fds(self.ctl, [array.array("i", allfds).tobytes()], allfds)
        data = self.ctl.recv(PID_BYTES)
        pid = int.from_bytes(data, "little") if len(data) == PID_BYTES else 0
        if pid <= 0:
            raise OSError("the worker zygote did not fork a worker")
        return ForkedChild(pid)

    def close(self) -> None:
        """End the zygote (EOF on its control socket) and reap it."""
        if self.failed:
            return
        self.failed = True
        self.ctl.close()
        try:
            self.popen.wait(ANSWER_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
