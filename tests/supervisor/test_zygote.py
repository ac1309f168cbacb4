"""The supervisor's zygote handle: forks are our children, a dead zygote makes fork fail.

(This makes the test process a subreaper, as the supervisor is.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import pytest

from burrow.common.exitcodes import ExitCode
from burrow.supervisor.zygote import ForkedChild, Zygote


def spec_pipe(data: bytes) -> int:
    r, w = os.pipe()
    os.write(w, data)
    os.close(w)
    return r


def test_a_forked_worker_is_our_child_and_reports_its_exit_code() -> None:
    zygote = Zygote.start()
    try:
        spec = spec_pipe(b"not a msgpack spec")
        try:
            child = zygote.fork(spec, [])
        finally:
            os.close(spec)
        # A bad spec is a boot failure: the worker's own exit code, reaped by us (our child).
        assert child.wait() == ExitCode.WORKER_BOOT
        child.kill()  # no-op once reaped
    finally:
        zygote.close()
    assert zygote.popen.returncode == 0  # EOF ended it


def test_fork_fails_once_the_zygote_is_gone() -> None:
    zygote = Zygote.start()
    try:
        zygote.popen.send_signal(signal.SIGKILL)
        zygote.popen.wait(10)
        spec = spec_pipe(b"x")
        try:
            with pytest.raises(OSError):
                zygote.fork(spec, [])
        finally:
            os.close(spec)
    finally:
        zygote.close()
    assert zygote.failed


def test_fork_here_refuses_a_process_with_threads() -> None:
    # A fork copies only the calling thread; the others' locks could be held in the child.
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, args=(30,), daemon=True)
    thread.start()
    try:
        with pytest.raises(OSError, match="threads"):
            Zygote.fork_here()
    finally:
        stop.set()
        thread.join(10)


FORK_HERE = """
import os, sys
from burrow.supervisor.zygote import Zygote
kept_r, kept_w = os.pipe()  # an fd of the "supervisor" the zygote must not hold
zygote = Zygote.fork_here()
pid = zygote.popen.pid
r, w = os.pipe()
os.write(w, b"not a msgpack spec")
os.close(w)
child = zygote.fork(r, [])
os.close(r)
fds = sorted(int(n) for n in os.listdir(f"/proc/{pid}/fd"))
comm = open(f"/proc/{pid}/comm").read().strip()
print(child.wait(10), comm, kept_r in fds, kept_w in fds, len(fds), flush=True)
zygote.close()
print(zygote.popen.returncode, flush=True)
"""


def test_a_zygote_forked_from_a_one_thread_process_forks_workers() -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    out = subprocess.run(
        [sys.executable, "-c", FORK_HERE],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    first, second = out.stdout.splitlines()
    code, comm, kept_r, kept_w, nfds = first.split()
    assert int(code) == ExitCode.WORKER_BOOT  # the worker's own exit code, reaped by its caller
    assert comm == "burrow-zygote"
    assert (kept_r, kept_w) == ("False", "False")
    assert int(nfds) == 4  # stdin, stdout, stderr and its control socket
    assert second == "0"  # EOF ended it; the parent's clean-up never ran in the child
    assert out.stderr.strip() == (  # the worker's boot error, once: no buffer written twice
        "burrow worker: cannot read its spec: invalid worker spec: Expected `object`, got `int`"
    )


def test_wait_with_a_timeout_on_a_forked_child() -> None:
    pid = os.posix_spawnp("sleep", ["sleep", "30"], os.environ)
    child = ForkedChild(pid)
    with pytest.raises(subprocess.TimeoutExpired):
        child.wait(0.05)
    child.kill()
    assert child.wait(10) == -signal.SIGKILL
    child.kill()  # reaped: a no-op, never a signal to a reused pid
