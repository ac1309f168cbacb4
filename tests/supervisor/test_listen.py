"""Listener binding on real sockets: one owner per address, dual-stack ``:port``, adoption of
inherited (systemd) sockets of either family, the port lock and the /proc owner lookup."""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from burrow.supervisor import exclusive, listeners
from burrow.supervisor.adopt import match_score
from burrow.supervisor.listeners import BindRequest, ListenerError, bind_listeners
from burrow.supervisor.portowner import find_owner, parse_proc_net, read_table

TCP_TIME_WAIT = 0x06


def _holder(
    family: int, kind: int, host: str, *, reuseport: bool = True, port: int = 0
) -> socket.socket:
    """A socket holding ``host``:ephemeral as another Burrow's would (REUSEADDR+REUSEPORT)."""
    sock = socket.socket(family, kind)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuseport:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    exclusive.set_dual_stack(sock, host)
    sock.bind((host, port))
    if kind == socket.SOCK_STREAM:
        sock.listen()
    return sock


@pytest.fixture
def cleanup() -> Iterator[list[socket.socket]]:
    socks: list[socket.socket] = []
    yield socks
    for sock in socks:
        sock.close()


HOLDER = """
import socket, sys
family, kind, host = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
sock = socket.socket(family, kind)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
if host == "::":
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
sock.bind((host, 0))
if kind == socket.SOCK_STREAM:
    sock.listen()
print(sock.getsockname()[1], flush=True)
sys.stdin.read()
"""


@contextlib.contextmanager
def holder_process(family: int, kind: int, host: str) -> Iterator[tuple[int, int]]:
    """Another process holding ``host``:ephemeral as another Burrow would; yields (pid, port)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(int(family)), str(int(kind)), host],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 20)
        assert ready, "the holder process never bound"
        yield proc.pid, int(proc.stdout.readline())
    finally:
        proc.stdin.close()  # its read() returns: it exits
        proc.stdout.close()
        proc.wait(10)


@pytest.mark.parametrize(
    ("holder_host", "family", "kind", "network", "request_host"),
    [
        ("127.0.0.1", socket.AF_INET, socket.SOCK_STREAM, "tcp", "127.0.0.1"),
        ("127.0.0.1", socket.AF_INET, socket.SOCK_STREAM, "tcp", ""),  # :port overlaps it
        ("::", socket.AF_INET6, socket.SOCK_STREAM, "tcp", "127.0.0.1"),  # dual-stack holds v4
        ("127.0.0.1", socket.AF_INET, socket.SOCK_DGRAM, "udp", "127.0.0.1"),
        ("::1", socket.AF_INET6, socket.SOCK_DGRAM, "udp", ""),
    ],
)
def test_a_reuseport_group_of_another_process_is_refused_and_named(
    holder_host: str, family: int, kind: int, network: str, request_host: str
) -> None:
    with holder_process(family, kind, holder_host) as (pid, port):
        request = BindRequest("web", "entrypoint", network, request_host, port)
        err = pytest.raises(ListenerError, bind_listeners, [request], 2).value
    text = str(err)
    assert f"service 'web' (entrypoint, {network})" in text
    assert f":{port} is already in use by another process (held by pid {pid} " in text
    assert err.fields["owner"].startswith(f"pid {pid} ({sys.executable} -c ")
    assert err.fields["fix"] == "stop the other process, or give this service another port"
    assert "ReusePort" not in text


def test_overlapping_listeners_of_one_config_are_refused() -> None:
    reqs = [BindRequest("a", "relay", "tcp", "", 0)]
    first, _ = bind_listeners(reqs, 2)
    try:
        port = first[0].port
        with pytest.raises(ListenerError, match=rf"127\.0\.0\.1:{port} overlaps another listener"):
            bind_listeners([BindRequest("a", "entrypoint", "tcp", "127.0.0.1", port)], 2)
    finally:
        first[0].close()


def test_time_wait_leftovers_do_not_count_as_an_owner() -> None:
    old = socket.socket()
    old.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    old.bind(("127.0.0.1", 0))
    old.listen()
    port = old.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port), timeout=5)
    conn, _ = old.accept()
    conn.close()  # the server side closes first: its end stays in TIME_WAIT on `port`
    assert client.recv(1) == b""
    client.close()
    old.close()
    rows = read_table("tcp")
    assert any(r.port == port and r.state == TCP_TIME_WAIT for r in rows), "no TIME_WAIT made"
    bound, _ = bind_listeners([BindRequest("web", "relay", "tcp", "127.0.0.1", port)], 2)
    try:
        assert bound[0].port == port and len(bound[0].sockets) == 2
    finally:
        bound[0].close()


def test_colon_port_binds_dual_stack_and_serves_both_families() -> None:
    reqs = [BindRequest("s", "relay", "tcp", "", 0), BindRequest("v", "visitor", "udp", "::", 0)]
    bound, _ = bind_listeners(reqs, 2)
    try:
        tcp, udp = bound
        assert tcp.family == socket.AF_INET6 and tcp.host == "::"
        assert tcp.token == f"s/relay=[::]:{tcp.port}"
        for sock in tcp.sockets + udp.sockets:
            assert sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 0
        for host in ("127.0.0.1", "::1"):
            with socket.create_connection((host, tcp.port), timeout=5):
                pass
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            with socket.socket(family, socket.SOCK_DGRAM) as c:
                c.sendto(b"x", (host, udp.port))
                got = [s for s in udp.sockets if _recv_ready(s)]
                assert len(got) == 1 and got[0].recv(10) == b"x"
    finally:
        for lst in bound:
            lst.close()


def _recv_ready(sock: socket.socket) -> bool:
    return bool(select.select([sock], [], [], 0.5)[0])


def test_colon_port_falls_back_to_ipv4_without_ipv6(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(listeners, "ipv6_available", lambda: False)
    assert listeners.resolve_host("", "tcp") == (socket.AF_INET, "0.0.0.0")
    bound, _ = bind_listeners([BindRequest("s", "relay", "tcp", "", 0)], 1)
    try:
        assert bound[0].family == socket.AF_INET and bound[0].host == "0.0.0.0"
    finally:
        bound[0].close()


def _inherited(family: int, kind: int, host: str, *, v6only: bool | None = None) -> socket.socket:
    sock = socket.socket(family, kind)
    if v6only is not None:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(v6only))
    sock.bind((host, 0))
    if kind == socket.SOCK_STREAM:
        sock.listen()
    return sock


def test_inherited_sockets_match_by_port_and_compatible_family(
    cleanup: list[socket.socket],
) -> None:
    tcp, udp, six = socket.SOCK_STREAM, socket.SOCK_DGRAM, socket.AF_INET6
    dual = _inherited(six, tcp, "::", v6only=False)
    only6 = _inherited(six, tcp, "::", v6only=True)
    any4 = _inherited(socket.AF_INET, tcp, "0.0.0.0")
    lo4 = _inherited(socket.AF_INET, tcp, "127.0.0.1")
    cleanup.extend([dual, only6, any4, lo4])
    port = dual.getsockname()[1]
    assert match_score(dual, six, tcp, "::", port) == 3  # ListenStream=8443 for ":8443"
    assert match_score(dual, socket.AF_INET, tcp, "0.0.0.0", port) == 1
    assert match_score(dual, six, udp, "::", port) == 0
    assert match_score(dual, six, tcp, "::", port + 1) == 0
    assert match_score(only6, six, tcp, "::", only6.getsockname()[1]) == 2
    assert match_score(only6, socket.AF_INET, tcp, "0.0.0.0", only6.getsockname()[1]) == 0
    assert match_score(any4, six, tcp, "::", any4.getsockname()[1]) == 1  # host without IPv6
    assert match_score(any4, six, tcp, "::", 0) == 0  # port 0 takes only the same address
    assert match_score(lo4, socket.AF_INET, tcp, "127.0.0.1", 0) == 3
    assert match_score(lo4, six, tcp, "::", lo4.getsockname()[1]) == 0


def test_dual_stack_inherited_socket_serves_colon_port_in_every_slot() -> None:
    sd = _inherited(socket.AF_INET6, socket.SOCK_STREAM, "::", v6only=False)
    sd_udp = _inherited(socket.AF_INET6, socket.SOCK_DGRAM, "::", v6only=False)
    port, uport = sd.getsockname()[1], sd_udp.getsockname()[1]
    fds = [sd.detach(), sd_udp.detach()]
    reqs = [
        BindRequest("s", "relay", "tcp", "", port),
        BindRequest("v", "visitor", "udp", "", uport),
    ]
    bound, unused = bind_listeners(reqs, 3, fds)
    try:
        tcp, udp = bound
        assert unused == [] and tcp.adopted and udp.adopted
        assert tcp.token == f"s/relay=[::]:{port}"
        assert [tcp.fd(i) for i in range(3)] == [fds[0]] * 3
        # One peer's datagrams must stay in one worker: the shared UDP socket is slot 0's only.
        assert [udp.fd(i) for i in range(3)] == [fds[1], None, None]
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
    finally:
        for lst in bound:
            lst.close()


def test_port_lock_is_removed_on_release_and_gives_up_on_a_stuck_holder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dirs = (str(tmp_path),)
    with exclusive.port_lock("tcp", 8443, dirs) as held:
        assert held and (tmp_path / "burrow-tcp-8443.lock").exists()
    assert not (tmp_path / "burrow-tcp-8443.lock").exists()  # removed on release
    path = tmp_path / "burrow-udp-53.lock"
    path.write_text("")
    os.chmod(path, 0o444)  # another user's file: opened read-only, which flock accepts
    stuck = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(stuck, fcntl.LOCK_EX)
        monkeypatch.setattr(exclusive, "LOCK_WAIT", 0.05)
        with exclusive.port_lock("udp", 53, dirs) as held:
            assert not held
    finally:
        os.close(stuck)
    with exclusive.port_lock("udp", 53, dirs) as held:
        assert held
    assert not path.exists()
    with exclusive.port_lock("tcp", 0, dirs) as held:
        assert not held and not (tmp_path / "burrow-tcp-0.lock").exists()


def test_proc_net_rows_parse_both_families() -> None:
    table = (
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid"
        "  timeout inode\n"
        "   0: 0100007F:20FB 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000"
        "        0 4242 1 0000000000000000 100 0 0 10 0\n"
        "   1: 00000000000000000000000001000000:0050 00000000000000000000000000000000:0000 0A"
        " 00000000:00000000 00:00000000 00000000     0        0 77 1 0 100 0 0 10 0\n"
        "   2: garbage\n"
    )
    rows = parse_proc_net(table)
    assert [(r.host, r.port, r.state, r.uid, r.inode) for r in rows] == [
        ("127.0.0.1", 8443, 0x0A, 1000, 4242),
        ("::1", 80, 0x0A, 0, 77),
    ]


def test_find_owner_names_this_process(cleanup: list[socket.socket]) -> None:
    holder = _holder(socket.AF_INET, socket.SOCK_STREAM, "127.0.0.1", reuseport=False)
    cleanup.append(holder)
    port = holder.getsockname()[1]
    owner = find_owner("tcp", port)
    assert owner is not None and owner.pid == os.getpid() and owner.uid == os.getuid()
    assert owner.describe().endswith(f" on 127.0.0.1:{port}") and "\n" not in owner.command


def test_an_inherited_socket_no_listener_adopts_is_named_as_such() -> None:
    sd = _inherited(socket.AF_INET, socket.SOCK_STREAM, "127.0.0.1")
    port = sd.getsockname()[1]
    fd = sd.detach()
    # ListenStream=127.0.0.1:P does not serve a dual-stack ":P" listener, and it holds the port.
    with pytest.raises(ListenerError) as err:
        bind_listeners([BindRequest("s", "relay", "tcp", "", port)], 2, [fd])
    assert f"[::]:{port} is already in use by a socket systemd passed in (127.0.0.1:{port})" in str(
        err.value
    )
    assert "ListenStream=" in err.value.fields["fix"]
    with pytest.raises(OSError):
        os.fstat(fd)  # closed with everything else on failure


def test_the_port_lock_closes_the_probe_bind_race(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cleanup: list[socket.socket]
) -> None:
    monkeypatch.setattr(exclusive, "LOCK_DIRS", (str(tmp_path),))
    refused = threading.Event()

    def flock(fd: int, op: int) -> None:
        try:
            fcntl.flock(fd, op)
        except BlockingIOError:
            refused.set()
            raise

    monkeypatch.setattr(
        exclusive,
        "fcntl",
        SimpleNamespace(flock=flock, LOCK_EX=fcntl.LOCK_EX, LOCK_NB=fcntl.LOCK_NB),
    )
    with socket.socket() as spare:
        spare.bind(("127.0.0.1", 0))
        port = spare.getsockname()[1]
    outcome: list[object] = []

    def second() -> None:
        try:
            outcome.append(bind_listeners([BindRequest("b", "relay", "tcp", "127.0.0.1", port)], 2))
        except ListenerError as exc:
            outcome.append(exc)

    # Instance A has probed and holds the lock; B starts and must wait for A's bind.
    with exclusive.port_lock("tcp", port) as held:
        assert held
        racer = threading.Thread(target=second)
        racer.start()
        assert refused.wait(10), "the second instance never met the lock"
        cleanup.append(_holder(socket.AF_INET, socket.SOCK_STREAM, "127.0.0.1", port=port))
    racer.join(10)
    assert len(outcome) == 1 and isinstance(outcome[0], ListenerError), outcome
    assert f"127.0.0.1:{port} overlaps another listener" in str(outcome[0])  # A, in this process


def test_a_waiter_that_locks_a_released_and_removed_file_starts_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "burrow-tcp-9000.lock"
    path.write_text("")
    stale = os.open(path, os.O_RDONLY)  # opened before the holder removed it on release
    path.unlink()
    real_open = exclusive._open_lock
    opened: list[int] = []

    def open_lock(where: str) -> int | None:
        fd = os.dup(stale) if not opened else real_open(where)
        opened.append(-1 if fd is None else fd)
        return fd

    monkeypatch.setattr(exclusive, "_open_lock", open_lock)
    try:
        with exclusive.port_lock("tcp", 9000, (str(tmp_path),)) as held:
            assert held and path.exists() and len(opened) == 2
            assert os.fstat(opened[1]).st_ino == path.stat().st_ino != os.fstat(stale).st_ino
    finally:
        os.close(stale)
