"""HA failover scenario: two tunnel clients on one tunnel, 50 req/s loops, one client signalled.

Shared by tests/e2e/test_failover.py (asserts) and tests/bench/failover.py (prints the table for
BENCHMARKS.md). Topology, all real processes on 127.0.0.1:

    loop A -> entry point --\\                      /-- client-a --> web-a
                             server (1 worker) ===
    loop B -> visitor -------/  relay port        \\-- client-b --> web-b

Each loop opens a new connection per request at a fixed rate, in its own thread per request, so
a request stuck on a frozen client does not slow the loop down. Every request has its own path,
and the backends record the paths they serve: a path served twice is a duplicate delivery.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from e2e.harness import (
    BurrowProcess,
    Launcher,
    client_config,
    client_service,
    forward_node,
    server_config,
    visitor_config,
    visitor_service,
    wait_for,
)
from e2e.peers import TcpPeer, http_request, read_http_head

TUNNEL = "4d21094e-b74c-4916-86c1-d9fa36ea677b"
HOST = "app.local"
RATE = 50.0  # requests per second, per loop
REQUEST_TIMEOUT = 8.0  # a request slower than this counts as failed
UP_TIMEOUT = 10.0
CASES = ("sigterm", "sigstop", "sigkill")
_ids = itertools.count()


class RecordingPeer(TcpPeer):
    """HTTP/1.1 server answering ``<name> <path>`` and recording every path it served."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.paths: Counter[str] = Counter()
        self._lock = threading.Lock()
        super().__init__(self._serve)

    def _serve(self, conn: socket.socket) -> None:
        head = read_http_head(conn)
        if not head:
            return
        path = head.split(b" ", 2)[1].decode("latin-1")
        with self._lock:
            self.paths[path] += 1
        body = f"{self.name} {path}".encode()
        conn.sendall(
            f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )


def request(address: tuple[str, int], path: str, timeout: float) -> str:
    """One GET of ``path`` for HOST on a new connection: the name of the backend that answered."""
    status, body = http_request(address, HOST, path, timeout=timeout)
    name, _, got = body.decode("latin-1").partition(" ")
    if status != 200 or got != path:
        raise ValueError(f"{status} {body!r}")
    return name


@dataclass
class Sample:
    """One request: when it started (monotonic), how long it took, whether it worked."""

    start: float
    latency: float
    ok: bool
    error: str = ""


@dataclass
class Loop:
    """A fixed-rate request loop against one address, until stopped."""

    name: str
    address: tuple[str, int]
    samples: list[Sample] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _running: dict[int, float] = field(default_factory=dict)  # thread -> start of its request
    _pacer: threading.Thread | None = None

    def _one(self) -> None:
        t0 = time.monotonic()
        me = threading.get_ident()
        with self._lock:
            self._running[me] = t0
        try:
            request(self.address, f"/{self.name}/{next(_ids)}", REQUEST_TIMEOUT)
            ok, err = True, ""
        except (OSError, ValueError) as exc:
            ok, err = False, f"{self.name}: {exc!r}"
        sample = Sample(t0, time.monotonic() - t0, ok, err)
        with self._lock:
            del self._running[me]
            self.samples.append(sample)

    def _run(self) -> None:
        step, nxt = 1.0 / RATE, time.monotonic()
        while not self._stop.is_set():
            t = threading.Thread(target=self._one, daemon=True)
            t.start()
            self._threads.append(t)
            nxt += step
            # Pacing the load (the rate is what is measured), not synchronisation.
            self._stop.wait(max(0.0, nxt - time.monotonic()))

    def start(self) -> None:
        """Begin sending requests."""
        self._pacer = threading.Thread(target=self._run, daemon=True)
        self._pacer.start()

    def halt(self) -> None:
        """Send no new request (the requests already sent go on)."""
        self._stop.set()
        assert self._pacer is not None
        self._pacer.join(REQUEST_TIMEOUT)

    def wait(self) -> None:
        """Wait (bounded) for the requests sent; one still running counts as failed."""
        deadline = time.monotonic() + REQUEST_TIMEOUT + 2.0
        for t in list(self._threads):
            t.join(max(0.0, deadline - time.monotonic()))
        now = time.monotonic()
        with self._lock:
            for t0 in self._running.values():
                self.samples.append(Sample(t0, now - t0, False, "still running"))
            self._running.clear()


@dataclass
class CaseResult:
    """What one case measured, over both loops."""

    dialect: str
    case: str
    signalled_at: float
    samples: list[Sample]
    duplicates: int  # requests a backend served more than once
    workers: int = 1  # server workers
    server_log: str = ""

    @property
    def failed(self) -> list[Sample]:
        return [s for s in self.samples if not s.ok]

    @property
    def worst(self) -> float:
        return max((s.latency for s in self.samples), default=0.0)

    def row(self) -> str:
        """A BENCHMARKS.md table row."""
        return (
            f"| {self.case} | {self.dialect} | {self.workers} | {len(self.samples)} | "
            f"{len(self.failed)} | "
            f"{self.worst * 1000:.0f} ms | {self.duplicates} |"
        )


HEADER = (
    "| case | dialect | server workers | requests | failed | worst latency | served twice |\n"
    "|---|---|---|---|---|---|---|"
)


@dataclass
class Topology:
    """The running processes and the two loop addresses."""

    server: BurrowProcess
    a: BurrowProcess
    b: BurrowProcess
    entry: tuple[str, int]
    visitor: tuple[str, int]


def start_topology(
    burrow: Launcher, web_a: RecordingPeer, web_b: RecordingPeer, dialect: str, workers: int = 1
) -> Topology:
    """Server, client-a -> web-a and client-b -> web-b on TUNNEL, a visitor.

    With ``workers`` > 1 client-b is restarted until its tunnel lands on another server worker
    than client-a's (the kernel spreads them by hash), so failover must cross workers."""
    server = burrow.start(
        "server", server_config([(HOST, TUNNEL)], dialect=dialect), workers=workers
    )
    relay = server.listener("relay").address

    def client(name: str, web: RecordingPeer) -> BurrowProcess:
        services = [client_service("s", [forward_node("web", web.address)])]
        cfg = client_config(relay, TUNNEL, services, dialect=dialect)
        return burrow.start(name, cfg, wait=False)

    # Started together, waited for together: most of a case's wall time is process start-up.
    a, b = client("client-a", web_a), client("client-b", web_b)
    visitor = burrow.start(
        "visitor",
        visitor_config(relay, TUNNEL, [visitor_service("v", target=f"{HOST}:80")], dialect=dialect),
        wait=False,
    )
    for bp in (a, b, visitor):
        bp.wait_ready()
    ups = 2
    server.wait_log(r"tunnel\.up", timeout=UP_TIMEOUT, count=ups)
    for _ in range(20 if workers > 1 else 0):
        if _worker_of(server, a) != _worker_of(server, b):
            break
        b.stop()
        burrow.started.remove(b)
        b = client("client-b", web_b)
        b.wait_ready()
        ups += 1
        server.wait_log(r"tunnel\.up", timeout=UP_TIMEOUT, count=ups)
    else:
        assert workers == 1, "client-b never landed on another server worker"
    el, vl = server.listener("entrypoint"), visitor.listener("visitor")
    topo = Topology(server, a, b, (el.host, el.port), (vl.host, vl.port))
    for where in (topo.entry, topo.visitor):
        served_by(where, web_a.name)
    return topo


def _worker_of(server: BurrowProcess, client: BurrowProcess) -> str:
    """The server worker ("worker-N") holding the client's tunnel, from both logs."""
    cid = re.search(r"connector=(\S+)", client.wait_log(r"tunnel\.up", timeout=UP_TIMEOUT))
    assert cid is not None, client.stderr()
    line = re.search(rf"(worker-\d+) tunnel\.up .*connector={re.escape(cid[1])}", server.stderr())
    assert line is not None, server.stderr()
    return line[1]


def served_by(where: tuple[str, int], name: str) -> None:
    """Send requests via ``where`` until backend ``name`` answers one (bounded)."""

    def probe() -> bool | None:
        try:
            return True if request(where, f"/probe/{next(_ids)}", 2.0) == name else None
        except (OSError, ValueError):
            return None

    wait_for(f"{name} answering via {where}", probe, UP_TIMEOUT, step=0.01)


def run_case(
    burrow: Launcher,
    dialect: str,
    case: str,
    *,
    workers: int = 1,
    before: float = 1.5,
    after: float = 3.5,
) -> CaseResult:
    """Run both loops for ``before`` s, signal client-a (term/stop/kill), run ``after`` s more."""
    web_a, web_b = RecordingPeer("web-a"), RecordingPeer("web-b")
    try:
        topo = start_topology(burrow, web_a, web_b, dialect, workers)
        return _measure(topo, web_a, web_b, dialect, case, before, after, workers)
    finally:
        web_a.close()
        web_b.close()


def _measure(
    topo: Topology,
    web_a: RecordingPeer,
    web_b: RecordingPeer,
    dialect: str,
    case: str,
    before: float,
    after: float,
    workers: int,
) -> CaseResult:
    loops = [Loop("entrypoint", topo.entry), Loop("visitor", topo.visitor)]
    pid = topo.a.proc.pid
    for lp in loops:
        lp.start()
    stopped = False
    try:
        time.sleep(before)  # load before the event is part of the measurement
        at = time.monotonic()
        if case == "sigterm":
            # The supervisor alone, as `kill PID` or systemd's KillMode=mixed: it drains its
            # workers (a second SIGTERM straight to a worker would mean "stop now").
            os.kill(pid, signal.SIGTERM)
        elif case == "sigterm-group":
            # Every process of the client at once, as systemd's default KillMode: the worker
            # gets the supervisor's SIGTERM too, and a second SIGTERM means "stop now".
            os.killpg(pid, signal.SIGTERM)
        elif case == "sigstop":
            os.killpg(pid, signal.SIGSTOP)
            stopped = True
        elif case == "sigkill":
            topo.a.kill()
        else:
            raise ValueError(case)
        time.sleep(after)
    finally:
        for lp in loops:
            lp.halt()
        for lp in loops:
            lp.wait()
        if stopped:
            os.killpg(pid, signal.SIGCONT)
    if stopped:
        # Once client-a answers a new request it has read every stream queued while it was
        # frozen, so an abandoned stream it (wrongly) forwarded would be counted below.
        served_by(topo.entry, web_a.name)
    samples = sorted((s for lp in loops for s in lp.samples), key=lambda s: s.start)
    paths = web_a.paths + web_b.paths
    dup = sum(n - 1 for p, n in paths.items() if n > 1 and not p.startswith("/probe/"))
    return CaseResult(dialect, case, at, samples, dup, workers, topo.server.stderr())
