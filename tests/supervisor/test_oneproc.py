"""The one-process-or-pool decision (supervisor/oneproc.py), on plans built from gost flags."""

from __future__ import annotations

import io
import socket
from pathlib import Path

import pytest

from burrow.config.load import load_with_lines
from burrow.config.plan import build_plans
from burrow.config.plan_types import ServicePlan
from burrow.supervisor.oneproc import one_process

TID = "4d21094e-b74c-4916-86c1-d9fa36ea677b"
NODE = f"relay://127.0.0.1:8443?tunnelID={TID}"
CLIENT = "rtcp://:0/127.0.0.1:80"
RUDP = "rudp://:0/127.0.0.1:53"
VISITOR = "tcp://127.0.0.1:2222/ssh.local:0"
UDP_VISITOR = "udp://127.0.0.1:1053/dns.local:0"
SERVER = f"relay://127.0.0.1:8443?entryPoint=127.0.0.1:8080&tunnel=.example.com:{TID}"


def plans(services: list[str], nodes: list[str]) -> list[ServicePlan]:
    config, _ = load_with_lines(None, services, nodes)
    return build_plans(config, source="test")


@pytest.mark.parametrize(
    "services", [[CLIENT], [VISITOR], [RUDP], [UDP_VISITOR], [CLIENT, VISITOR, UDP_VISITOR]]
)
def test_clients_and_visitors_run_in_one_process(services: list[str]) -> None:
    assert one_process(plans(services, [NODE]), None) is True


def test_a_relay_server_always_gets_the_pool() -> None:
    assert one_process(plans([SERVER], []), None) is False


@pytest.mark.parametrize("flag, configured", [(1, None), (2, None), (None, 1), (None, 4), (1, 2)])
def test_a_worker_count_asked_for_gives_the_pool(flag: int | None, configured: int | None) -> None:
    assert one_process(plans([CLIENT, VISITOR], [NODE]), flag, configured) is False


def test_no_services_is_not_one_process() -> None:
    assert one_process([], None) is False


def test_solo_spec_round_trip() -> None:
    from burrow.ipc.spec import ListenerFd
    from burrow.supervisor.listeners import BindRequest
    from burrow.supervisor.oneproc import SoloSpec, decode_solo_spec, encode_solo_spec

    spec = SoloSpec(
        plans=b"\x80",
        source="/etc/burrow/client.yaml",
        binds=[BindRequest("v", "visitor", "udp", "::1", 53)],
        listeners=[ListenerFd("v", "visitor", "udp", "[::1]:53", 7)],
        tokens="v/visitor=[::1]:53/udp",
        log_level="debug",
    )
    assert decode_solo_spec(encode_solo_spec(spec)) == spec


def test_solo_main_without_a_spec_fd_is_a_usage_error() -> None:
    from burrow.common.exitcodes import ExitCode
    from burrow.supervisor.solo import main

    assert main(["--spec-fd", "x"]) == ExitCode.USAGE
    assert main([]) == ExitCode.USAGE


def test_host_announces_and_refuses_changed_listeners(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """READY line and READY=1; a reload with other listeners is refused, then READY=1 again."""
    from burrow.supervisor.listeners import BindRequest
    from burrow.supervisor.oneproc import OneProcessHost
    from burrow.supervisor.reload import Reloaded, ReloadRefused

    binds = [BindRequest("v", "visitor", "tcp", "127.0.0.1", 2222)]
    results: list[Reloaded | ReloadRefused] = [
        Reloaded(b"new", list(binds)),
        Reloaded(b"other", [*binds, BindRequest("w", "visitor", "tcp", "127.0.0.1", 2223)]),
        ReloadRefused("reload.failed", {"file": "x.yaml", "error": "gone", "fix": "restore it"}),
    ]
    notify = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sd:
        sd.bind(str(notify))
        sd.settimeout(5.0)
        monkeypatch.setenv("NOTIFY_SOCKET", str(notify))
        out = io.StringIO()
        host = OneProcessHost(binds, "v/visitor=127.0.0.1:2222", lambda: results.pop(0), out)
        host.ready()
        assert out.getvalue() == "READY workers=1 v/visitor=127.0.0.1:2222\n"
        assert sd.recv(64) == b"READY=1"
        assert host.reload() == b"new"
        assert sd.recv(64).startswith(b"RELOADING=1\nMONOTONIC_USEC=")
        host.reloaded()
        assert sd.recv(64) == b"READY=1"
        for _ in range(2):  # other listeners, then a refused re-read: nothing to apply
            assert host.reload() is None
            assert sd.recv(64).startswith(b"RELOADING=1\nMONOTONIC_USEC=")
            assert sd.recv(64) == b"READY=1"
        host.stopping("SIGTERM", 10.0)
        host.stopping("SIGTERM", 0.0)
        assert sd.recv(64) == b"STOPPING=1"
        sd.setblocking(False)
        with pytest.raises(BlockingIOError):
            sd.recv(64)  # STOPPING=1 once
