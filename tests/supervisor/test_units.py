"""In-process tests of the supervisor's parts: sockets, inboxes, timers, signals, systemd, rundir,
heartbeat deadlines and the registry broker over real zmq sockets."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import zmq

from burrow.config.errors import ConfigError
from burrow.ipc.messages import (
    ConnectorBatch,
    ConnectorDown,
    ConnectorInfo,
    ConnectorUp,
    Hello,
    SnapshotRequest,
    WorkerMessage,
    decode_delta,
    decode_snapshot,
    encode,
)
from burrow.supervisor import systemd
from burrow.supervisor.handoff_mesh import HandoffMesh
from burrow.supervisor.health import HeartbeatMonitor, run_queue_wait
from burrow.supervisor.listeners import (
    BindRequest,
    ListenerError,
    bind_listeners,
    ipv6_available,
    resolve_host,
)
from burrow.supervisor.loop import Loop
from burrow.supervisor.registry import RegistryBroker
from burrow.supervisor.run import bind_requests, worker_count
from burrow.supervisor.rundir import RunDir, runtime_base
from burrow.supervisor.signals import SignalQueue
from burrow.supervisor.spawn import describe_exit, worker_command

TID = "4d21094e-b74c-4916-86c1-d9fa36ea677b"


def test_port_zero_shares_one_port_across_reuseport_sockets() -> None:
    reqs = [
        BindRequest("svc", "entrypoint", "tcp", "127.0.0.1", 0),
        BindRequest("svc", "visitor", "udp", "127.0.0.1", 0),
    ]
    listeners, unused = bind_listeners(reqs, 3)
    try:
        assert unused == []
        tcp, udp = listeners
        assert len({s.getsockname()[1] for s in tcp.sockets}) == 1 and len(tcp.sockets) == 3
        assert all(s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) for s in tcp.sockets)
        assert all(s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) for s in tcp.sockets)
        assert not any(os.get_inheritable(s.fileno()) for s in tcp.sockets + udp.sockets)
        assert udp.sockets[0].type == socket.SOCK_DGRAM and udp.port != 0
        assert tcp.token == f"svc/entrypoint=127.0.0.1:{tcp.port}"
        assert udp.token == f"svc/visitor=127.0.0.1:{udp.port}/udp"
        # The kernel really accepts on the shared address.
        with socket.create_connection(("127.0.0.1", tcp.port), timeout=5):
            pass
    finally:
        for lst in listeners:
            lst.close()


def test_bind_conflict_names_the_service_and_closes_everything() -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        with pytest.raises(ListenerError, match=rf"service 'web'.*127\.0\.0\.1:{port}"):
            bind_listeners([BindRequest("web", "entrypoint", "tcp", "127.0.0.1", port)], 2)
    finally:
        holder.close()


def test_hosts_resolve_to_bind_addresses() -> None:
    dual = (socket.AF_INET6, "::") if ipv6_available() else (socket.AF_INET, "0.0.0.0")
    assert resolve_host("", "tcp") == dual
    assert resolve_host("[::]", "udp") == (socket.AF_INET6, "::")
    assert resolve_host("[::1]", "tcp") == (socket.AF_INET6, "::1")
    assert resolve_host("127.0.0.1", "udp") == (socket.AF_INET, "127.0.0.1")


def test_systemd_socket_is_adopted_and_shared_by_every_slot() -> None:
    sd = socket.socket()
    sd.bind(("127.0.0.1", 0))
    sd.listen()
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    port = sd.getsockname()[1]
    fd = sd.detach()
    # The adopted socket holds the port in this very process: a probe would call it taken.
    listeners, unused = bind_listeners(
        [BindRequest("svc", "relay", "tcp", "127.0.0.1", port)], 2, [fd, other.fileno()]
    )
    try:
        assert listeners[0].sockets[0].fileno() == fd and len(listeners[0].sockets) == 1
        assert listeners[0].port == port and listeners[0].fd(0) == listeners[0].fd(1) == fd
        assert unused == [other.fileno()]
    finally:
        listeners[0].close()
        other.close()


def test_listen_fds_only_for_our_pid() -> None:
    env = {"LISTEN_PID": str(os.getpid() + 1), "LISTEN_FDS": "2"}
    assert systemd.listen_fds(env) == []
    env = {"LISTEN_PID": "junk", "LISTEN_FDS": "2"}
    assert systemd.listen_fds(env) == []


def test_sd_notify_sends_the_state(tmp_path: Path) -> None:
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(5)
        assert systemd.sd_notify("READY=1", {"NOTIFY_SOCKET": path})
        assert sock.recv(100) == b"READY=1"
    assert not systemd.sd_notify("READY=1", {})


def test_handoff_mesh_gives_each_slot_its_inbox_and_peers_outboxes() -> None:
    mesh = HandoffMesh(3)
    try:
        inbox0 = mesh.inbox_fd(0)
        assert set(mesh.outbox_fds(0)) == {1, 2}
        assert inbox0 not in mesh.outbox_fds(1).values()
        send_into_0 = mesh.outbox_fds(1)[0]
        assert mesh.outbox_fds(2)[0] == send_into_0
        os.write(send_into_0, b"hello")
        assert os.read(inbox0, 100) == b"hello"
        assert sorted(mesh.pass_fds(0)) == sorted([inbox0, *mesh.outbox_fds(0).values()])
    finally:
        mesh.close()
    single = HandoffMesh(1)
    assert single.inbox_fd(0) == -1 and single.outbox_fds(0) == {} and single.pass_fds(0) == []


def test_rundir_is_private_and_removed(tmp_path: Path) -> None:
    rd = RunDir(str(tmp_path))
    assert stat.S_IMODE(os.stat(rd.path).st_mode) == 0o700
    assert rd.endpoint("registry") == f"ipc://{rd.path}/registry"
    rd.close()
    assert not os.path.exists(rd.path)


def test_rundir_too_deep_for_a_socket_is_a_config_error_naming_the_key(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 90)
    with pytest.raises(ConfigError) as err:
        RunDir(str(deep))
    assert err.value.key == "burrow.runtime_dir" and "/run/burrow" in err.value.fix
    assert not deep.exists()  # refused before anything was made


def test_runtime_base_prefers_systemd_runtime_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    unit, xdg = tmp_path / "unit", tmp_path / "xdg"
    unit.mkdir()
    xdg.mkdir()
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(xdg))
    monkeypatch.setenv("RUNTIME_DIRECTORY", f"{unit}:{tmp_path}/second")
    assert runtime_base(None) == str(unit)
    assert runtime_base("/configured") == "/configured"
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(tmp_path / "missing"))
    assert runtime_base(None) == str(xdg)


def test_heartbeat_deadlines() -> None:
    hm = HeartbeatMonitor(0.5, boot_timeout=10, run_wait=None)
    assert hm.timeout == 1.5
    hm.started(1, now=0)
    hm.started(2, now=0)
    assert hm.next_deadline() == 10
    hm.ready(1, now=1)
    assert hm.next_deadline() == 2.5
    hm.beat(1, now=1)
    assert hm.next_deadline() == 2.5
    assert hm.expired(2.4) == []
    assert hm.expired(2.5) == [1]
    assert hm.expired(3) == []  # reported once
    hm.forget(2)
    assert hm.next_deadline() is None


def test_heartbeat_boot_allowance_lasts_until_ready() -> None:
    # Hello and the first beats come before the services are built (plans decoded, snapshot
    # applied): a slow boot after them is still within the allowance, not a missed beat.
    hm = HeartbeatMonitor(1.0, boot_timeout=30, run_wait=None)  # timeout 3
    hm.started(1, now=0)
    hm.beat(1, now=0.5)  # Hello
    assert hm.next_deadline() == 30
    assert hm.expired(10.0) == []
    hm.beat(1, now=29.0)
    assert hm.next_deadline() == 32.0  # a beat late in the boot may extend it, never shorten it
    hm.ready(1, now=31.0)
    assert hm.next_deadline() == 34.0
    hm.ready(1, now=33.0)  # a repeated Ready changes nothing
    assert hm.expired(33.9) == [] and hm.expired(34.0) == [1]
    hm.started(2, now=40.0)
    assert hm.expired(70.0) == [2]  # a boot that never says Ready still runs out


def test_heartbeat_excuses_time_spent_waiting_for_a_cpu() -> None:
    # An overloaded host: the worker's loop was runnable but not running for part of its
    # silence. That part moves the deadline on; silence it could have used still counts.
    waited = {1: 0.0, 2: 0.0}
    hm = HeartbeatMonitor(1.0, run_wait=waited.get)  # timeout 3
    for pid in (1, 2):
        hm.started(pid, now=0)
        hm.ready(pid, now=0)
        hm.beat(pid, now=1.0)  # deadlines 4.0
    waited[1] = 2.5  # worker 1 waited 2.5 s for a CPU since its beat; worker 2 was blocked
    assert hm.expired(4.0) == [2]
    assert hm.next_deadline() == 6.5 and hm.excused == 1
    waited[1] = 3.0  # 0.5 s more of waiting: excused again, but the rest of the silence adds up
    assert hm.expired(6.5) == []
    assert hm.next_deadline() == 7.0
    assert hm.expired(7.0) == [1]  # no more waiting: judged like any silent worker
    assert hm.excused == 2


def test_run_queue_wait_reads_this_process_and_not_a_gone_one() -> None:
    w = run_queue_wait(os.getpid())
    assert w is not None and w >= 0.0
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(10)
    assert run_queue_wait(child.pid) is None


def test_heartbeat_judgement_survives_a_supervisor_stall() -> None:
    hm = HeartbeatMonitor(1.0, run_wait=None)  # timeout 3
    hm.started(1, now=0)
    hm.ready(1, now=0)
    hm.beat(1, now=1)
    assert hm.observe(1.0) == 0.0
    assert hm.next_check(1.0) == 2.0  # ticks every interval even with a later deadline
    # The supervisor was stopped from t=1 to t=6: the worker's deadline (4) passed meanwhile.
    assert hm.observe(6.0) == 5.0
    assert hm.expired(6.0) == []
    assert hm.next_deadline() == 9.0  # a full timeout of fresh misses from now
    assert hm.observe(7.0) == 0.0
    assert hm.expired(9.0) == [1]
    assert hm.stalls == 1


def test_heartbeat_stall_before_the_first_check_counts() -> None:
    hm = HeartbeatMonitor(1.0, run_wait=None)
    hm.started(1, now=0)
    hm.ready(1, now=0.5)
    assert hm.observe(6.0) == 6.0
    assert hm.expired(6.0) == []


def test_loop_runs_timers_in_order_and_readers() -> None:
    loop = Loop()
    order: list[str] = []
    a, b = socket.socketpair()
    try:
        loop.call_later(0.02, lambda: order.append("late"))
        cancelled = loop.call_later(0.01, lambda: order.append("cancelled"))
        cancelled.cancel()

        def on_read() -> None:
            order.append(b.recv(10).decode())
            loop.call_later(0.03, loop.stop)

        loop.add_reader(b.fileno(), on_read)
        loop.call_later(0.0, lambda: a.send(b"data"))
        loop.run()
        assert order == ["data", "late"]
    finally:
        a.close()
        b.close()


def test_signal_queue_records_and_wakes() -> None:
    q = SignalQueue((signal.SIGHUP,))
    q.install()
    try:
        os.kill(os.getpid(), signal.SIGHUP)
        os.kill(os.getpid(), signal.SIGHUP)
        assert os.read(q.fileno(), 10)  # the wakeup fd became readable
        assert q.drain() == [signal.SIGHUP, signal.SIGHUP]
        assert q.drain() == []
    finally:
        q.restore()
    assert signal.getsignal(signal.SIGHUP) == signal.SIG_DFL


def test_exit_descriptions() -> None:
    assert describe_exit(3, None) == "exited with code 3"
    assert describe_exit(-9, None) == "killed by SIGKILL (out of memory?)"
    assert describe_exit(-9, "no heartbeat for 3s") == "killed by SIGKILL (no heartbeat for 3s)"
    assert describe_exit(-15, None) == "killed by SIGTERM"


def test_run_helpers() -> None:
    spec = SimpleNamespace(
        service="s", role="relay", network="tcp", endpoint=SimpleNamespace(host="", port=8443)
    )
    assert bind_requests([spec]) == [BindRequest("s", "relay", "tcp", "", 8443)]  # type: ignore[list-item]
    cfg: Any = SimpleNamespace(burrow=SimpleNamespace(workers=3))
    assert worker_count(5, cfg) == 5 and worker_count(None, cfg) == 3
    cfg.burrow.workers = None
    assert 1 <= worker_count(None, cfg) <= len(os.sched_getaffinity(0))


def _info(cid: str, worker: int) -> ConnectorInfo:
    return ConnectorInfo(
        tunnel_id=TID,
        connector_id=cid,
        worker=worker,
        network="tcp",
        weight=0,
        dialect="relay",
        peer="127.0.0.1:1",
        since=0.0,
    )


def test_registry_broker_snapshot_deltas_and_worker_drop(tmp_path: Path) -> None:
    rd = RunDir(str(tmp_path))
    got: list[tuple[bytes, WorkerMessage]] = []
    broker = RegistryBroker(rd.endpoint("r"), rd.endpoint("u"), lambda i, m: got.append((i, m)))
    ctx: zmq.Context[Any] = zmq.Context()
    try:
        ctx.setsockopt(zmq.LINGER, 0)
        sub = ctx.socket(zmq.SUB)
        sub.connect(broker.updates_endpoint)
        sub.subscribe(b"")
        dealers = [ctx.socket(zmq.DEALER) for _ in range(2)]
        for i, d in enumerate(dealers):
            d.setsockopt(zmq.ROUTING_ID, b"w%d" % i)
            d.connect(broker.registry_endpoint)
        poller = zmq.Poller()
        poller.register(broker.router, zmq.POLLIN)

        def pump(n: int) -> None:
            while len(got) < n:
                assert poller.poll(5000), "broker got nothing"
                broker.handle_readable()

        dealers[0].send(encode(Hello(index=0, pid=1, generation=0)))
        dealers[0].send(encode(SnapshotRequest(index=0)))
        pump(2)
        assert dealers[0].poll(5000)
        assert decode_snapshot(dealers[0].recv()).connectors == []
        for _ in range(100):  # PUB drops until the subscription lands: probe until one arrives
            broker.pub.send(b"probe")
            if sub.poll(50):
                assert sub.recv() == b"probe"
                break
        else:
            raise AssertionError("SUB never subscribed")
        dealers[0].send(encode(ConnectorUp(info=_info("c0", 0))))
        dealers[1].send(encode(ConnectorUp(info=_info("c1", 1))))
        pump(4)
        deltas = [decode_delta(sub.recv()) for _ in range(2) if sub.poll(5000)]
        assert sorted(d.up[0].connector_id for d in deltas) == ["c0", "c1"]
        assert got[0] == (b"w0", Hello(index=0, pid=1, generation=0))
        # Rolling reload: slot 1 still alive elsewhere -> only this process's connectors go.
        broker.worker_gone(b"w1", 1, slot_alive=True)
        assert sub.poll(5000)
        assert decode_delta(sub.recv()).down == [(TID, "c1")]
        broker.worker_gone(b"w0", 0, slot_alive=False)
        assert sub.poll(5000)
        assert [tuple(x) for x in decode_delta(sub.recv()).down] == [(TID, "c0")]
        dealers[1].send(encode(ConnectorDown(tunnel_id=TID, connector_id="gone")))
        pump(5)
        assert not sub.poll(100)  # no-op change: nothing published
        assert broker.registry.connectors() == []
        # A batch is one Delta; the broker remembers who owns what it carried.
        ups = [_info(f"b{i}", 1) for i in range(300)]
        dealers[1].send(encode(ConnectorBatch(up=ups, down=[])))
        dealers[1].send(encode(ConnectorBatch(up=[], down=[(TID, "b7")])))
        pump(7)
        batch = [decode_delta(sub.recv()) for _ in range(2) if sub.poll(5000)]
        assert [len(d.up) for d in batch] == [300, 0] and batch[1].down == [(TID, "b7")]
        assert batch[1].seq == batch[0].seq + 1
        broker.worker_gone(b"w1", 1, slot_alive=True)
        downs = [
            tuple(k) for _ in range(299) if sub.poll(5000) for k in decode_delta(sub.recv()).down
        ]
        assert sorted(downs) == sorted((TID, f"b{i}") for i in range(300) if i != 7)
        assert broker.registry.connectors() == []
        for d in dealers:
            d.close()
        sub.close()
    finally:
        ctx.term()
        broker.close()
        rd.close()


def test_worker_command_skips_site_and_keeps_the_supervisors_path() -> None:
    # A worker started as the supervisor starts it imports the worker stack from the same path,
    # without running site (and whatever .pth files import) again.
    argv, env = worker_command("burrow.worker.main", 99)
    assert argv[:3] == [sys.executable, "-S", "-m"] and argv[3:] == [
        "burrow.worker.main",
        "--spec-fd",
        "99",
    ]
    assert env["PYTHONPATH"].split(os.pathsep) == [p for p in sys.path if p]
    probe = (
        "import sys, burrow.worker.app, uvloop, zmq, msgspec; "
        "print(sys.flags.no_site, 'site' in sys.modules, 'certifi' in sys.modules)"
    )
    out = subprocess.run(
        [*argv[:2], "-c", probe], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.split() == ["1", "False", "False"]


def test_a_supervisor_without_a_cluster_does_not_import_redis() -> None:
    # redis (and asyncio with it) is 13 MB PSS in the supervisor; only a cluster needs it.
    _argv, env = worker_command("burrow.worker.main", 99)
    probe = (
        "import sys, burrow.supervisor.cli, burrow.supervisor.run, burrow.supervisor.arbiter; "
        "print('redis' in sys.modules, 'asyncio' in sys.modules); "
        "import burrow.supervisor.cluster_client; print('redis' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-S", "-c", probe],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.split() == ["False", "False", "True"]
