"""Start one worker: build its WorkerSpec, fork+exec it with exactly the fds it owns, watch its pidfd.

Everything is CLOEXEC (PEP 446) except what ``pass_fds`` names, so a worker never inherits
another worker's lifeline or pidfd. The spec goes down a pipe the supervisor fills and closes
before the child starts, so a slow child can never block the supervisor.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from burrow.ipc.spec import ListenerFd, WorkerSpec, encode_spec

from .handoff_mesh import HandoffMesh
from .listeners import BoundListener

if TYPE_CHECKING:
    from .zygote import ForkedChild, Zygote

DEFAULT_WORKER_MODULE = "burrow.worker.main"
# Linux's default /proc/sys/fs/pipe-max-size; the spec (config included) must fit in one pipe.
MAX_SPEC_BYTES = 1 << 20
PIPE_BUF_DEFAULT = 65536


@dataclass(frozen=True, slots=True)
class WorkerTemplate:
    """What every worker of one generation shares."""

    count: int
    config: bytes
    source: str | None
    registry_endpoint: str
    updates_endpoint: str
    runtime_dir: str
    worker_module: str = DEFAULT_WORKER_MODULE
    log_level: str = "info"
    log_format: str = "text"
    heartbeat_interval: float = 1.0


@dataclass(eq=False, slots=True)
class WorkerProcess:
    """One running worker process and the supervisor's handles on it."""

    index: int
    generation: int
    popen: subprocess.Popen[bytes] | ForkedChild
    pidfd: int
    lifeline: int
    started: float
    ready_at: float | None = None
    identity: bytes | None = None
    stopping: bool = False
    killed: str | None = None
    returncode: int | None = None

    @property
    def pid(self) -> int:
        """The worker's pid."""
        return self.popen.pid

    @property
    def name(self) -> str:
        """A short name for log lines."""
        return f"worker-{self.index}"

    def send_signal(self, sig: int) -> None:
        """Signal the worker through its pidfd (immune to pid reuse); no-op once it has exited."""
        if self.returncode is not None:
            return
        try:
            signal.pidfd_send_signal(self.pidfd, sig)
        except ProcessLookupError:
            pass

    def reap(self) -> int:
        """Collect the exit status once the pidfd is readable; negative = killed by that signal."""
        if self.returncode is None:
            self.returncode = self.popen.wait()
        return self.returncode

    def close(self) -> None:
        """Release the pidfd and our end of the lifeline (the latter tells the worker to exit)."""
        for fd in (self.pidfd, self.lifeline):
            if fd >= 0:
                os.close(fd)
        self.pidfd = self.lifeline = -1


def describe_exit(code: int, killed: str | None) -> str:
    """Human wording for a worker's exit status, with a hint for SIGKILL we did not send."""
    if code >= 0:
        return f"exited with code {code}"
    name = signal.Signals(-code).name
    if killed:
        return f"killed by {name} ({killed})"
    if -code == signal.SIGKILL:
        return f"killed by {name} (out of memory?)"
    return f"killed by {name}"


def build_spec(
    template: WorkerTemplate,
    index: int,
    generation: int,
    listeners: list[BoundListener],
    mesh: HandoffMesh,
    lifeline_fd: int,
) -> WorkerSpec:
    """The WorkerSpec for slot ``index``."""
    return WorkerSpec(
        index=index,
        count=template.count,
        generation=generation,
        plans=template.config,
        source=template.source,
        listeners=[
            ListenerFd(
                service=lst.request.service,
                role=lst.request.role,
                network=lst.request.network,
                address=lst.address,
                fd=fd,
            )
            for lst in listeners
            if (fd := lst.fd(index)) is not None
        ],
        inbox_fd=mesh.inbox_fd(index),
        outbox_fds=mesh.outbox_fds(index),
        registry_endpoint=template.registry_endpoint,
        updates_endpoint=template.updates_endpoint,
        lifeline_fd=lifeline_fd,
        runtime_dir=template.runtime_dir,
        log_level=template.log_level,
        log_format=template.log_format,
        heartbeat_interval=template.heartbeat_interval,
    )


def _spec_pipe(data: bytes) -> int:
    """A pipe holding ``data`` followed by EOF; returns the read end."""
    if len(data) > MAX_SPEC_BYTES:
        raise OSError(f"worker spec is {len(data)} bytes, over the {MAX_SPEC_BYTES}-byte limit")
    rfd, wfd = os.pipe()
    try:
        if len(data) > PIPE_BUF_DEFAULT:
            fcntl.fcntl(wfd, fcntl.F_SETPIPE_SZ, len(data))
        view = memoryview(data)
        while view:
            view = view[os.write(wfd, view) :]
    except BaseException:
        os.close(rfd)
        raise
    finally:
        os.close(wfd)
    return rfd


def worker_command(module: str, spec_fd: int) -> tuple[list[str], dict[str, str]]:
    """argv and environment of an exec'd worker (``python_command``)."""
    return python_command(module, ["--spec-fd", str(spec_fd)])


def python_command(module: str, args: list[str]) -> tuple[list[str], dict[str, str]]:
    """argv and environment of ``python -S -m module``, with the supervisor's resolved sys.path.

    Site processing (``.pth`` files, sitecustomize) already ran in the supervisor; a worker that
    repeats it keeps whatever those import for its whole life (5 MB RSS per process on the
    benchmark host, where a ``.pth`` imports certifi and with it importlib.resources, zipfile,
    tempfile and shutil: BENCHMARKS.md, Scale). The path the supervisor resolved, venv and
    ``.pth`` entries included, goes along as PYTHONPATH, so the worker finds the same modules.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    return [sys.executable, "-S", "-m", module, *args], env


def spawn_worker(
    template: WorkerTemplate,
    index: int,
    generation: int,
    listeners: list[BoundListener],
    mesh: HandoffMesh,
    now: float,
    zygote: Zygote | None = None,
) -> WorkerProcess:
    """Start slot ``index``'s worker; raises OSError when the process cannot be created.

    With a ``zygote`` (default worker module only) the worker is forked from it; if that
    fails the zygote is closed, ``zygote.failed`` set, and the worker exec'd as without one.
    """
    life_r, life_w = os.pipe()
    spec_r = -1
    try:
        spec = build_spec(template, index, generation, listeners, mesh, life_r)
        spec_r = _spec_pipe(encode_spec(spec))
        own = [fd for lst in listeners if (fd := lst.fd(index)) is not None]
        fds = [life_r, spec_r, *mesh.pass_fds(index), *own]
        popen: subprocess.Popen[bytes] | ForkedChild | None = None
        if zygote is not None and not zygote.failed:
            try:
                popen = zygote.fork(spec_r, fds)
            except OSError:
                zygote.close()  # sets failed: every later worker is exec'd
        if popen is None:
            argv, env = worker_command(template.worker_module, spec_r)
            popen = subprocess.Popen(
                argv,
                env=env,
                pass_fds=fds,
                stdin=subprocess.DEVNULL,
                start_new_session=False,
            )
    except BaseException:
        os.close(life_w)
        raise
    finally:
        os.close(life_r)
        if spec_r >= 0:
            os.close(spec_r)
    try:
        pidfd = os.pidfd_open(popen.pid)
    except OSError:
        popen.kill()
        popen.wait()
        os.close(life_w)
        raise
    return WorkerProcess(index, generation, popen, pidfd, life_w, now)
