"""Heartbeat deadlines: a worker whose event loop stops proving liveness gets killed.

gunicorn's ``murder_workers`` idea, but the proof comes over the bus from inside the worker's
loop (docs/architecture.md, Processes: Heartbeats), and deadlines are data the poll loop turns into
one timer.
"""

from __future__ import annotations

# Python + uvloop + zmq imports take well under a second; a boot that needs this long is stuck.
DEFAULT_BOOT_TIMEOUT = 30.0
MISSED_BEATS = 3
# A gap between two of the supervisor's own checks longer than this many intervals means the
# supervisor itself was not running (SIGSTOP, VM or container pause, CPU starvation).
STALL_INTERVALS = 2.0


class HeartbeatMonitor:
    """Per-process deadlines: boot allowance at spawn, then ``timeout`` after each sign of life."""

    def __init__(
        self,
        interval: float,
        timeout: float | None = None,
        boot_timeout: float = DEFAULT_BOOT_TIMEOUT,
    ) -> None:
        self.interval = interval
        self.timeout = timeout if timeout is not None else MISSED_BEATS * interval
        self.boot_timeout = boot_timeout
        self._deadlines: dict[int, float] = {}
        self._last_check: float | None = None
        self.stalls = 0

    def started(self, pid: int, now: float) -> None:
        """A process was spawned: it has the boot allowance to say Hello."""
        self._deadlines[pid] = now + max(self.boot_timeout, self.timeout)
        if self._last_check is None:
            # Checks start with the first process; a stall before the first check counts too.
            self._last_check = now

    def beat(self, pid: int, now: float) -> None:
        """Any message from the process counts as a heartbeat."""
        if pid in self._deadlines:
            self._deadlines[pid] = now + self.timeout

    def forget(self, pid: int) -> None:
        """The process exited (or is being stopped on purpose)."""
        self._deadlines.pop(pid, None)

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
        late = [pid for pid, when in self._deadlines.items() if when <= now]
        for pid in late:
            del self._deadlines[pid]
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
