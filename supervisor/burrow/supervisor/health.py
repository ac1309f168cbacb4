"""Heartbeat deadlines: a worker whose event loop stops proving liveness gets killed.

gunicorn's ``murder_workers`` idea, but the proof comes over the bus from inside the worker's
loop (docs/architecture.md, Processes: Heartbeats), and deadlines are data the poll loop turns into
one timer.

Silence a worker could not help is not evidence against it: time its loop thread spent runnable
but waiting for a CPU (``/proc/<pid>/schedstat``, the run-queue delay) moves its deadline on by
as much. On a host with more busy processes than cores an overloaded loop that makes progress
is not wedged; killing it drops every connection it holds (BENCHMARKS.md, Scale: 100,000
streams). A loop blocked in a syscall or spinning on a CPU still runs out its timeout.
"""

from __future__ import annotations

from collections.abc import Callable

# Python + uvloop + zmq imports take well under a second; a boot that needs this long is stuck.
DEFAULT_BOOT_TIMEOUT = 30.0
MISSED_BEATS = 3
# A gap between two of the supervisor's own checks longer than this many intervals means the
# supervisor itself was not running (SIGSTOP, VM or container pause, CPU starvation).
STALL_INTERVALS = 2.0
# Run-queue delay below this is noise, not worth a deadline move.
MIN_EXCUSE = 0.01


def run_queue_wait(pid: int) -> float | None:
    """Seconds the main thread of ``pid`` has waited runnable for a CPU, or None if unknown."""
    try:
        with open(f"/proc/{pid}/schedstat", "rb") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return None


class HeartbeatMonitor:
    """Per-process deadlines: boot allowance at spawn, then ``timeout`` after each sign of life.

    The boot allowance lasts until the process says Ready: between Hello and Ready a worker
    decodes its plans, takes the registry snapshot and builds its services, seconds of CPU with
    10,000 ingress rules on a busy host, and a beat meanwhile must not shorten the allowance
    (a restarted worker was killed again and again mid-boot, BENCHMARKS.md, Scale).
    """

    def __init__(
        self,
        interval: float,
        timeout: float | None = None,
        boot_timeout: float = DEFAULT_BOOT_TIMEOUT,
        run_wait: Callable[[int], float | None] | None = run_queue_wait,
    ) -> None:
        self.interval = interval
        self._run_wait = run_wait
        self._waited: dict[int, float] = {}  # run-queue delay at the last beat or excuse
        self.excused = 0  # deadlines moved for run-queue delay (for logs and tests)
        self.timeout = timeout if timeout is not None else MISSED_BEATS * interval
        self.boot_timeout = boot_timeout
        self._deadlines: dict[int, float] = {}
        self._booting: set[int] = set()
        self._last_check: float | None = None
        self.stalls = 0

    def started(self, pid: int, now: float) -> None:
        """A process was spawned: it has the boot allowance to say Hello."""
        self._deadlines[pid] = now + max(self.boot_timeout, self.timeout)
        self._booting.add(pid)
        self._note_wait(pid)
        if self._last_check is None:
            # Checks start with the first process; a stall before the first check counts too.
            self._last_check = now

    def beat(self, pid: int, now: float) -> None:
        """Any message from the process counts as a heartbeat (never shortening a boot)."""
        when = self._deadlines.get(pid)
        if when is None:
            return
        fresh = now + self.timeout
        self._deadlines[pid] = max(when, fresh) if pid in self._booting else fresh
        self._note_wait(pid)

    def _note_wait(self, pid: int) -> float:
        """Record the run-queue delay of ``pid`` now; returns how much it grew since last time."""
        if self._run_wait is None:
            return 0.0
        w = self._run_wait(pid)
        if w is None:
            self._waited.pop(pid, None)
            return 0.0
        before = self._waited.get(pid)
        self._waited[pid] = w
        return 0.0 if before is None else max(0.0, w - before)

    def ready(self, pid: int, now: float) -> None:
        """The process serves: from now on it is judged by ``timeout`` after each beat."""
        if pid in self._booting:
            self._booting.discard(pid)
            if pid in self._deadlines:
                self._deadlines[pid] = now + self.timeout

    def forget(self, pid: int) -> None:
        """The process exited (or is being stopped on purpose)."""
        self._deadlines.pop(pid, None)
        self._booting.discard(pid)
        self._waited.pop(pid, None)

    def observe(self, now: float) -> float:
        """Note one of the supervisor's own checks; returns the stall it detected (0 if none).

        Silence the supervisor could not watch is not evidence against a worker: after a stall
        every worker gets a full ``timeout`` from now, so it is judged only on fresh misses.
        """
        last, self._last_check = self._last_check, now
        if last is None:
            return 0.0
        gap = now - last
        if gap <= STALL_INTERVALS * self.interval:
            return 0.0
        self.stalls += 1
        fresh = now + self.timeout
        for pid, when in self._deadlines.items():
            self._deadlines[pid] = max(when, fresh)
        return gap

    def expired(self, now: float) -> list[int]:
        """Processes past their deadline; each is reported once (then forgotten)."""
        late = []
        for pid, when in list(self._deadlines.items()):
            if when > now:
                continue
            excuse = self._note_wait(pid)
            if excuse >= MIN_EXCUSE:
                self.excused += 1
                self._deadlines[pid] = when + excuse
                if when + excuse > now:
                    continue
            late.append(pid)
            self.forget(pid)
        return late

    def next_deadline(self) -> float | None:
        """The earliest deadline, for the loop's timer."""
        return min(self._deadlines.values(), default=None)

    def next_check(self, now: float) -> float | None:
        """When to check next: the earliest deadline, but at least every ``interval`` so a stall
        of the supervisor shows up as a gap between checks."""
        deadline = self.next_deadline()
        if deadline is None:
            return None
        return min(deadline, now + self.interval)
