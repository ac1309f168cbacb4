"""Hostile smux peers against a real two-worker server (Burrow issue 16).

Each attacker is a raw socket that does a valid BIND with the sans-IO codecs and then misbehaves
(or, for the slow reader, a visitor that reads at a trickle). A healthy request loop runs on
ANOTHER tunnel during the attack (and for the slow reader on the same tunnel too); it must keep
at least 99 % success, and the workers' memory must stay bounded.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Self

import pytest
from e2e.conftest import TUNNEL_A, TUNNEL_B
from e2e.harness import (
    BurrowProcess,
    Launcher,
    client_config,
    client_service,
    forward_node,
    server_config,
    wait_for,
)
from e2e.peers import TcpPeer, http_request, read_http_head
from e2e.test_bad_input import worker_rss

from burrow.common.ids import TunnelId
from burrow.proto.addr import ATYP_DOMAIN, Address
from burrow.proto.relay import Cmd, RelayRequest, Status, parse_response
from burrow.proto.relay_features import AddrFeature, TunnelFeature
from burrow.proto.smux import PSH, SYN, encode_frame, encode_header

UP_TIMEOUT = 10.0
MAX_RSS_GROWTH = 64 * 1024 * 1024
MIN_SUCCESS = 0.99
BIG = 64 * 1024 * 1024  # the slow visitor's download


@dataclass
class Loop:
    """A healthy request loop in a thread: success count and the slowest request."""

    entry: tuple[str, int]
    host: str
    ok: int = 0
    total: int = 0
    worst: float = 0.0
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def run(self) -> None:
        while not self.stop.is_set():
            t0 = time.monotonic()
            try:
                status, body = http_request(self.entry, self.host, timeout=5.0)
                good = status == 200 and body.startswith(b"healthy")
            except OSError:
                good = False
            self.worst = max(self.worst, time.monotonic() - t0)
            self.total += 1
            self.ok += good

    def __enter__(self) -> Self:
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        assert self.thread is not None
        self.thread.join(10)

    @property
    def success(self) -> float:
        return self.ok / self.total if self.total else 0.0


def _big_or_healthy(conn: socket.socket) -> None:
    """HTTP peer: ``/big`` streams BIG bytes, anything else answers ``healthy``."""
    while True:
        head = read_http_head(conn)
        if not head:
            return
        if head.startswith(b"GET /big "):
            conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {BIG}\r\n\r\n".encode())
            block = b"x" * 65536
            for _ in range(BIG // len(block)):
                conn.sendall(block)
            return
        body = b"healthy"
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n" + body)


@pytest.fixture
def backend() -> Iterator[TcpPeer]:
    peer = TcpPeer(_big_or_healthy)
    yield peer
    peer.close()


def start_server(burrow: Launcher, dialect: str) -> tuple[BurrowProcess, tuple[str, int]]:
    cfg = server_config([(".example.com", TUNNEL_A), (".attack.local", TUNNEL_B)], dialect=dialect)
    server = burrow.start("server", cfg, workers=2)
    entry = server.listener("entrypoint")
    return server, (entry.host, entry.port)


def start_client(burrow: Launcher, server: BurrowProcess, backend: TcpPeer, dialect: str) -> None:
    relay = server.listener("relay").address
    nodes = [forward_node("web", backend.address)]
    cfg = client_config(relay, TUNNEL_A, [client_service("s", nodes)], dialect=dialect)
    burrow.start("client", cfg).wait_log(r"tunnel\.up", timeout=UP_TIMEOUT)


def wait_healthy(entry: tuple[str, int], host: str = "www.example.com") -> None:
    def probe() -> bool | None:
        try:
            status, body = http_request(entry, host, timeout=2.0)
        except OSError:
            return None
        return True if status == 200 and body == b"healthy" else None

    wait_for("a healthy request", probe, UP_TIMEOUT)


def bind(server: BurrowProcess, dialect: str) -> socket.socket:
    """A raw tunnel connection on TUNNEL_B after a valid BIND (reply checked)."""
    relay = server.listener("relay")
    sock = socket.create_connection((relay.host, relay.port), timeout=5.0)
    tid = uuid.UUID(TUNNEL_B).bytes
    features: list[AddrFeature | TunnelFeature] = []
    if dialect == "tunnel":
        features.append(AddrFeature(Address.from_hostport("127.0.0.1:40000")))
    features.append(AddrFeature(Address("", 0, ATYP_DOMAIN)))
    features.append(TunnelFeature(TunnelId(tid), 16 if dialect == "relay" else 20))
    try:
        sock.sendall(RelayRequest(Cmd.BIND, tuple(features)).encode())
        buf = b""
        while (got := parse_response(buf)) is None:
            chunk = sock.recv(4096)
            assert chunk, "server closed the BIND"
            buf += chunk
        response, used = got
        assert response.status == Status.OK and used == len(buf)
        # Logs above debug level carry the first 8 hex characters of a tunnel ID.
        server.wait_log(r"tunnel\.up .*" + TUNNEL_B[:8], timeout=5.0)
    except BaseException:
        sock.close()
        raise
    return sock


def closed_by_peer(sock: socket.socket, timeout: float) -> bool:
    """Drain ``sock`` until EOF/reset (True) or ``timeout`` passes (False)."""
    sock.settimeout(0.5)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if not sock.recv(65536):
                return True
        except TimeoutError:
            continue
        except OSError:
            return True
    return False


def test_syn_flood_closes_only_the_flooding_session(burrow: Launcher, backend: TcpPeer) -> None:
    """Item 2: ~1 M SYNs from one tunnel client: its session is closed, others are served."""
    server, entry = start_server(burrow, "relay")
    start_client(burrow, server, backend, "relay")
    wait_healthy(entry)
    before = worker_rss(server)
    sock = bind(server, "relay")
    batch = b"".join(encode_header(1, SYN, 0, 2 * i + 1) for i in range(65536))
    peak = 0
    with Loop(entry, "www.example.com") as loop:
        sock.settimeout(10.0)
        sent = 0
        try:
            for _ in range(16):  # 1 M SYN frames, never reading the FINs
                sock.sendall(batch)
                sent += 65536
                peak = max(peak, worker_rss(server) - before)
        except OSError:
            pass  # the server closed the session: what we want
        closed = closed_by_peer(sock, 10.0)
        peak = max(peak, worker_rss(server) - before)
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:  # a few more healthy requests after the attack
            time.sleep(0.1)  # pacing the measurement window, not synchronisation
    sock.close()
    print(f"\nsyn-flood: sent={sent} healthy={loop.ok}/{loop.total} "
          f"worst={loop.worst:.3f}s peak_rss_growth={peak >> 20}MiB")  # fmt: skip
    assert loop.total > 20 and loop.success >= MIN_SUCCESS, (loop.ok, loop.total)
    assert peak < MAX_RSS_GROWTH, f"worker RSS grew by {peak} bytes"
    assert closed, "the flooding session was not closed"
    server.wait_log(r"mux\.stream_flood", timeout=5.0)
    assert server.alive() and "worker.exited" not in server.stderr()


def visit_until_syn(sock: socket.socket, entry: tuple[str, int]) -> tuple[socket.socket, bytes]:
    """A visitor of x.attack.local whose stream reached the raw session: (visitor, SYN header).

    The BIND landed on one worker; a visitor accepted by the other is answered 503 until that
    worker has learnt of the connector (membership travels in batches), so retry until the
    session gets the SYN.
    """
    deadline = time.monotonic() + UP_TIMEOUT
    while True:
        visitor = socket.create_connection(entry, timeout=5.0)
        visitor.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        visitor.sendall(b"GET / HTTP/1.1\r\nHost: x.attack.local\r\n\r\n")
        sock.settimeout(0.5)
        head = b""
        try:
            while len(head) < 8:
                chunk = sock.recv(8 - len(head))
                assert chunk, "server closed the raw session"
                head += chunk
        except TimeoutError:
            visitor.close()
            assert not head and time.monotonic() < deadline, "no stream reached the session"
            continue
        sock.settimeout(5.0)
        return visitor, head


def test_v2_window_overrun_closes_the_session(burrow: Launcher, backend: TcpPeer) -> None:
    """Item 3: a tunnel-dialect client pushing past its window at a visitor that never reads."""
    server, entry = start_server(burrow, "tunnel")
    start_client(burrow, server, backend, "tunnel")
    wait_healthy(entry)
    before = worker_rss(server)
    sock = bind(server, "tunnel")
    visitor, head = visit_until_syn(sock, entry)
    assert head[1] == SYN, head
    sid = int.from_bytes(head[4:8], "little")
    block = encode_frame(2, PSH, sid, b"z" * 65535)
    sent = 0
    peak = 0
    with Loop(entry, "www.example.com") as loop:
        sock.settimeout(10.0)
        try:
            for _ in range(6400):  # ~400 MB if nobody stops us
                sock.sendall(block)
                sent += 65535
                if sent % (64 * 65535) == 0:
                    peak = max(peak, worker_rss(server) - before)
        except OSError:
            pass
        peak = max(peak, worker_rss(server) - before)
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            time.sleep(0.1)  # pacing the measurement window, not synchronisation
    sock.close()
    visitor.close()
    print(f"\nwindow-overrun: sent={sent >> 20}MiB healthy={loop.ok}/{loop.total} "
          f"worst={loop.worst:.3f}s peak_rss_growth={peak >> 20}MiB")  # fmt: skip
    assert sent < 64 * 1024 * 1024, f"server took {sent} bytes past a 256 KiB window"
    assert loop.total > 20 and loop.success >= MIN_SUCCESS, (loop.ok, loop.total)
    assert peak < MAX_RSS_GROWTH, f"worker RSS grew by {peak} bytes"
    server.wait_log(r"overran the receive window", timeout=5.0)


def test_slow_reader_costs_only_itself(burrow: Launcher, backend: TcpPeer) -> None:
    """Item 1: a visitor reading a big download at ~4 KB/s on a relay-dialect tunnel."""
    server, entry = start_server(burrow, "relay")
    start_client(burrow, server, backend, "relay")
    wait_healthy(entry)
    before = worker_rss(server)
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.settimeout(5.0)
    slow.connect(entry)
    slow.sendall(b"GET /big HTTP/1.1\r\nHost: www.example.com\r\n\r\n")
    peak = 0
    got = 0
    reset = False
    with Loop(entry, "www.example.com") as loop:
        deadline = time.monotonic() + 12.0
        while time.monotonic() < deadline:
            try:
                chunk = slow.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                reset = True
                break
            if not chunk:
                reset = True
                break
            got += len(chunk)
            peak = max(peak, worker_rss(server) - before)
            time.sleep(1.0)  # the attack itself: read 4 KB per second
    slow.close()
    print(f"\nslow-reader: read={got} reset={reset} healthy-same-tunnel={loop.ok}/{loop.total} "
          f"worst={loop.worst:.3f}s peak_rss_growth={peak >> 20}MiB")  # fmt: skip
    assert loop.total > 20 and loop.success >= MIN_SUCCESS, (loop.ok, loop.total)
    assert peak < MAX_RSS_GROWTH, f"worker RSS grew by {peak} bytes"
    server.wait_log(r"mux\.stream_overflow", timeout=10.0)
    wait_healthy(entry)
