"""Supervisor: worker slots, spawn/reap/restart with backoff (reloads: reload.py, stops:
stopping.py, heartbeat watchdog: watchdog.py, cluster membership: cluster_join.py).

Independent of the config schema: it gets bind requests, opaque config bytes for the workers and
a worker module name, so tests drive it with a tiny protocol-free worker.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

from burrow.admin.book import StatsBook
from burrow.common.exitcodes import ExitCode
from burrow.common.logfmt import event
from burrow.config.schema import BurrowSettings
from burrow.ipc.messages import Applied, Hello, Ready, Stats, WorkerMessage

from . import systemd
from .cluster_join import ClusterJoin
from .cluster_setup import ClusterSetup
from .handoff_mesh import HandoffMesh
from .health import DEFAULT_BOOT_TIMEOUT, HeartbeatMonitor
from .listeners import BindRequest, BoundListener, bind_or_report
from .loop import Loop, Timer
from .registry import RegistryBroker
from .reload import Reloader, ReloadFn
from .rundir import RunDir
from .signals import SignalQueue
from .spawn import DEFAULT_WORKER_MODULE, WorkerProcess, WorkerTemplate, describe_exit, spawn_worker
from .stopping import Stopper
from .watchdog import Watchdog
from .zygote import Zygote

if TYPE_CHECKING:
    from .cluster_bridge import ClusterBridge

# BURROW_WORKER_ZYGOTE=0 execs every worker instead (to compare, or to rule the zygote out).
ZYGOTE_ENV = "BURROW_WORKER_ZYGOTE"
log = logging.getLogger("burrow.supervisor")

BACKOFF_MIN = 0.1
BACKOFF_MAX = 5.0
# A worker that stayed up this long after Ready earns a fresh backoff.
HEALTHY_RESET = 10.0
# The drain grace's one default lives in the config ([burrow] grace).
DEFAULT_GRACE = BurrowSettings().grace


@dataclass(eq=False, slots=True)
class Slot:
    """One worker position: its current process and restart backoff."""

    index: int
    current: WorkerProcess | None = None
    backoff: float = BACKOFF_MIN
    restart: Timer | None = None


def fork_zygote() -> Zygote | None:
    """The zygote forked from this process (one thread still), None if off or impossible.

    ``Supervisor.run`` execs one instead when given none.
    """
    if os.environ.get(ZYGOTE_ENV) == "0":
        return None
    try:
        return Zygote.fork_here()
    except OSError as exc:
        event(log, logging.DEBUG, "zygote.not_forked", error=str(exc), fallback="exec")
        return None


class Supervisor(Reloader, Stopper, Watchdog, ClusterJoin):
    """Owns listeners, inboxes, the registry broker and ``workers`` worker slots."""

    def __init__(
        self,
        binds: Sequence[BindRequest],
        config: bytes,
        *,
        workers: int,
        worker_module: str = DEFAULT_WORKER_MODULE,
        source: str | None = None,
        runtime_dir: str | None = None,
        log_level: str = "info",
        log_format: str = "text",
        heartbeat_interval: float = 1.0,
        heartbeat_timeout: float | None = None,
        boot_timeout: float = DEFAULT_BOOT_TIMEOUT,
        grace: float = DEFAULT_GRACE,
        reload: ReloadFn | None = None,
        live_reload: bool = False,
        periodic: tuple[float, ReloadFn] | None = None,
        inherited_fds: Sequence[int] = (),
        stdout: TextIO | None = None,
        book: StatsBook | None = None,
        cluster: ClusterSetup | None = None,
        zygote: Zygote | None = None,
    ) -> None:
        self.binds = list(binds)
        self.count = workers
        self.grace = grace
        self._config = config
        self._worker_module = worker_module
        self._source = source
        self._runtime_base = runtime_dir
        self._log_level = log_level
        self._log_format = log_format
        self._heartbeat_interval = heartbeat_interval
        self._reload_fn = reload
        # Live reload: running workers get the new config in place (their tunnels stay up);
        # otherwise workers are rolled one slot at a time.
        self._live_reload = live_reload
        # Ingress rules files with a ``reload`` period: (period, fn giving the re-planned config).
        self._periodic = periodic
        # Live reload waiting for acks: the identities that have not applied ``generation`` yet.
        self._acks: set[bytes] = set()
        self._inherited = list(inherited_fds)
        self._stdout = stdout if stdout is not None else sys.stdout
        # The admin endpoint's sums (None when it is off): fed from here, read by its thread.
        self.book = book
        self._cluster = cluster
        self._bridge: ClusterBridge | None = None
        self.health = HeartbeatMonitor(heartbeat_interval, heartbeat_timeout, boot_timeout)
        self.loop = Loop()
        self.slots = [Slot(i) for i in range(workers)]
        self.procs: dict[int, WorkerProcess] = {}
        self._by_identity: dict[bytes, WorkerProcess] = {}
        self.generation = 0
        self._template: WorkerTemplate | None = None
        self._listeners: list[BoundListener] = []
        self._mesh: HandoffMesh | None = None
        self._broker: RegistryBroker | None = None
        # Forked by the caller while this process was one thread (``fork_zygote``), or None.
        self._zygote: Zygote | None = zygote
        self._health_timer: Timer | None = None
        self._announced = False
        self._stopping = False
        self._exit_code = ExitCode.OK
        # Rolling reload state: slots still to roll, the new process being waited on, the
        # generation/template to go back to if the roll fails.
        self._roll_queue: list[int] = []
        self._roll_new: WorkerProcess | None = None
        self._roll_previous: tuple[int, WorkerTemplate] | None = None
        self._reload_pending = False

    def run(self) -> int:
        """Bind, spawn, serve until stopped; returns the process exit code."""
        signals = SignalQueue()
        rundir: RunDir | None = None
        try:
            listeners = bind_or_report(self.binds, self.count, self._inherited, log)
            if listeners is None:
                return ExitCode.FAILURE
            self._listeners = listeners
            rundir = RunDir(self._runtime_base)
            self._mesh = HandoffMesh(self.count)
            self._broker = RegistryBroker(
                rundir.endpoint("registry"), rundir.endpoint("updates"), self._on_message
            )
            if self._cluster is not None and not self._join_cluster(self._cluster):
                return ExitCode.CONFIG
            self._template = WorkerTemplate(
                count=self.count,
                config=self._config,
                source=self._source,
                registry_endpoint=self._broker.registry_endpoint,
                updates_endpoint=self._broker.updates_endpoint,
                runtime_dir=rundir.path,
                worker_module=self._worker_module,
                log_level=self._log_level,
                log_format=self._log_format,
                heartbeat_interval=self._heartbeat_interval,
            )
            signals.install()
            self.loop.add_reader(signals.fileno(), lambda: self._dispatch(signals.drain()))
            self.loop.add_reader(self._broker.router, self._broker.handle_readable)
            event(
                log,
                logging.INFO,
                "supervisor.start",
                workers=self.count,
                listeners=len(self._listeners),
            )
            self._zygote = self._start_zygote()
            for slot in self.slots:
                slot.current = self._spawn(slot.index)
            # Only the first generation is forked: a zygote kept for restarts would cost its
            # own private pages and RSS for the server's life (BENCHMARKS.md, third pass).
            if self._zygote is not None:
                self._zygote.close()
                self._zygote = None
            if self._periodic is not None:
                self.loop.call_later(self._periodic[0], self._reread_rules)
            self.loop.run()
            return int(self._exit_code)
        finally:
            self._cleanup(signals, rundir)

    def _cleanup(self, signals: SignalQueue, rundir: RunDir | None) -> None:
        for proc in list(self.procs.values()):
            proc.send_signal(signal.SIGKILL)
            proc.reap()
            proc.close()
        self.procs.clear()
        if self._zygote is not None:
            self._zygote.close()
        signals.restore()
        if self._bridge is not None:
            self._bridge.close()
        if self._broker is not None:
            self._broker.close()
        if self._mesh is not None:
            self._mesh.close()
        for listener in self._listeners:
            listener.close()
        if rundir is not None:
            rundir.close()

    def _start_zygote(self) -> Zygote | None:
        """The worker zygote, unless turned off or the workers are not Burrow's own."""
        if self._worker_module != DEFAULT_WORKER_MODULE or os.environ.get(ZYGOTE_ENV) == "0":
            if self._zygote is not None:
                self._zygote.close()
            return None
        if self._zygote is not None:
            return self._zygote
        try:
            return Zygote.start()
        except OSError as exc:
            event(log, logging.WARNING, "zygote.unavailable", error=str(exc))
            return None

    def _spawn(self, index: int) -> WorkerProcess | None:
        assert self._template is not None and self._mesh is not None
        now = self.loop.time()
        zygote = self._zygote
        try:
            proc = spawn_worker(
                self._template, index, self.generation, self._listeners, self._mesh, now, zygote
            )
        except OSError as exc:
            event(log, logging.ERROR, "worker.spawn_failed", worker=index, error=str(exc))
            self._schedule_restart(self.slots[index])
            return None
        finally:
            if zygote is not None and zygote.failed:
                event(log, logging.WARNING, "zygote.failed", worker=index, fallback="exec")
                self._zygote = None
        self.procs[proc.pid] = proc
        if self.book is not None:
            self.book.spawned(index, proc.pid, proc.generation)
        self.loop.add_reader(proc.pidfd, lambda: self._on_exit(proc))
        self.health.started(proc.pid, now)
        self._arm_health()
        event(
            log,
            logging.INFO,
            "worker.started",
            worker=index,
            pid=proc.pid,
            generation=proc.generation,
        )
        return proc

    def _schedule_restart(self, slot: Slot) -> None:
        if self._stopping or slot.restart is not None:
            return
        delay = slot.backoff
        slot.backoff = min(slot.backoff * 2, BACKOFF_MAX)
        slot.restart = self.loop.call_later(delay, lambda: self._restart(slot))

    def _restart(self, slot: Slot) -> None:
        slot.restart = None
        if not self._stopping and slot.current is None:
            slot.current = self._spawn(slot.index)

    def _on_message(self, identity: bytes, msg: WorkerMessage) -> None:
        if isinstance(msg, Hello):
            hello = self.procs.get(msg.pid)
            if hello is not None and hello.index == msg.index:
                hello.identity = identity
                self._by_identity[identity] = hello
        proc = self._by_identity.get(identity)
        if proc is None:
            event(log, logging.DEBUG, "registry.unknown_sender", message=type(msg).__name__)
            return
        self.health.beat(proc.pid, self.loop.time())
        self._arm_health()
        if isinstance(msg, Stats):
            if self.book is not None:
                self.book.report(proc.pid, msg)
        elif isinstance(msg, Ready):
            self.health.ready(proc.pid, self.loop.time())
            self._arm_health()  # the boot allowance ended: the deadline may be nearer now
            self._on_ready(proc)
        elif isinstance(msg, Applied) and msg.generation == self.generation:
            self._acked(identity)

    def _on_ready(self, proc: WorkerProcess) -> None:
        if proc.ready_at is not None or proc.stopping:
            return
        proc.ready_at = self.loop.time()
        if self.book is not None:
            self.book.ready(proc.pid)
        event(
            log,
            logging.INFO,
            "worker.ready",
            worker=proc.index,
            pid=proc.pid,
            generation=proc.generation,
        )
        if proc is self._roll_new:
            slot = self.slots[proc.index]
            old, slot.current = slot.current, proc
            self._roll_new = None
            if old is not None:
                self._retire(old, signal.SIGTERM, self.grace)
            self._roll_next()
            return
        if not self._announced and all(s.current and s.current.ready_at for s in self.slots):
            self._announced = True
            if self.book is not None:
                self.book.announced = True
            tokens = " ".join(lst.token for lst in self._listeners)
            print(f"READY workers={self.count} {tokens}".rstrip(), file=self._stdout, flush=True)
            systemd.sd_notify("READY=1")
            event(log, logging.INFO, "supervisor.ready", workers=self.count)

    def _on_exit(self, proc: WorkerProcess) -> None:
        self.loop.remove_reader(proc.pidfd)
        code = proc.reap()
        self.procs.pop(proc.pid, None)
        if proc.identity is not None:
            self._by_identity.pop(proc.identity, None)
        self.health.forget(proc.pid)
        if self.book is not None:
            self.book.exited(proc.pid)
        slot = self.slots[proc.index]
        assert self._broker is not None
        slot_alive = any(p.index == proc.index for p in self.procs.values())
        self._broker.worker_gone(proc.identity, proc.index, slot_alive)
        # Its replacement boots with the held (new) plans: nothing left to wait for from it.
        self._acked(proc.identity)
        proc.close()
        expected = proc.stopping and code in (0, -signal.SIGTERM, -signal.SIGQUIT)
        event(
            log,
            logging.INFO if expected else logging.WARNING,
            "worker.exited",
            worker=proc.index,
            pid=proc.pid,
            generation=proc.generation,
            status=describe_exit(code, proc.killed),
        )
        if self._stopping:
            if not self.procs:
                self.loop.stop()
            return
        if proc is self._roll_new:
            self._abort_reload(
                f"new worker-{proc.index} {describe_exit(code, proc.killed)} before Ready"
            )
            return
        if slot.current is not proc:
            return  # an old generation finishing its drain
        slot.current = None
        if self._roll_new is not None and self._roll_new.index == proc.index:
            return  # the reload is already bringing up this slot's replacement
        if proc.ready_at is None and code == ExitCode.WORKER_BOOT:
            self.stop(
                ExitCode.WORKER_BOOT,
                reason=f"worker-{proc.index} failed to boot (exit code {code}); not restarting",
            )
            return
        if proc.ready_at is not None and self.loop.time() - proc.ready_at >= HEALTHY_RESET:
            slot.backoff = BACKOFF_MIN
        if self.book is not None:
            self.book.restarts += 1
        self._schedule_restart(slot)
