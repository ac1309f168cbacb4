"""The supervisor's zygote handle: forks are our children, a dead zygote makes fork fail.

(This makes the test process a subreaper, as the supervisor is.)
"""

from __future__ import annotations

import os
import signal

import pytest

from burrow.common.exitcodes import ExitCode
from burrow.supervisor.zygote import Zygote


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
