"""Per-tunnel credentials (issue 12, item 2), real processes.

An impostor that knows a tunnel ID but not its BIND credential cannot register and gets none of
the public traffic; its 401 is byte-identical whether the tunnel exists or not; visitors need
the tunnel's CONNECT credential when one is set.
"""

from __future__ import annotations

import signal
import socket
import statistics
import time
from pathlib import Path
from typing import Any

from burrow.common.ids import TunnelId
from burrow.proto.relay import Cmd, RelayRequest, Status
from burrow.proto.relay_features import TunnelFeature, UserAuthFeature

from .attack import with_auth
from .harness import (
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
from .peers import EchoPeer, HttpPeer, exchange, http_request
from .topology import listener_address

T1 = "7a1c2b3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"  # has credentials
NOWHERE = "0b1c2d3e-4f50-4162-8374-a5b6c7d8e9f0"  # has none
HOST = "app.example.com"
BIND = ("app", "bind-Secret-1")
CONNECT = ("visitor", "connect-Secret-2")
UP = 20.0


def server_with_creds(*, ban_budget: int = 10) -> dict[str, Any]:
    config = server_config([(HOST, T1)], dialect="tunnel")
    config["tunnels"] = [
        {
            "id": T1,
            "bind": {"username": BIND[0], "password": BIND[1]},
            "connect": {"username": CONNECT[0], "password": CONNECT[1]},
        }
    ]
    config["burrow"] = {
        "tunnel_auth": {"required": True},
        "limits": {"auth_failures_per_minute": ban_budget},
    }
    return config


def bind_reply(relay: tuple[str, int], tunnel: str, user: str, password: str) -> bytes:
    """Everything the server sends to a raw BIND with these credentials, until it closes."""
    req = RelayRequest(
        Cmd.BIND,
        (UserAuthFeature(user, password), TunnelFeature(TunnelId.parse(tunnel), 20)),
    )
    with socket.create_connection(relay, timeout=10.0) as sock:
        sock.sendall(req.encode())
        out = b""
        while chunk := sock.recv(4096):
            out += chunk
    return out


def client(relay: str, backend: str, auth: tuple[str, str] | None) -> dict[str, Any]:
    config = client_config(
        relay, T1, [client_service("s", [forward_node("n", backend)])], dialect="tunnel"
    )
    return with_auth(config, *auth) if auth is not None else config


def test_impostor_cannot_register_and_gets_no_traffic(burrow: Launcher) -> None:
    legit, fake = HttpPeer("legit"), HttpPeer("impostor")
    try:
        server = burrow.start("server", server_with_creds())
        relay = server.listener("relay").address
        good = burrow.start("client", client(relay, legit.address, BIND))
        good.wait_log(r"tunnel\.up", timeout=UP)
        # Two impostors: the right user name with a guessed password, and no credentials.
        bad1 = burrow.start("impostor1", client(relay, fake.address, (BIND[0], "guess")))
        bad2 = burrow.start("impostor2", client(relay, fake.address, None))
        server.wait_log(r"relay\.refused.*authentication failed", timeout=UP, count=2)
        for bad in (bad1, bad2):
            assert "tunnel.up" not in bad.stderr() + bad.stdout()
        entry = listener_address(server, "entrypoint")
        bodies = [http_request(entry, HOST, timeout=10.0) for _ in range(100)]
        assert bodies == [(200, f"legit host={HOST}".encode())] * 100
        assert fake.accepted == 0
        for bad in (bad1, bad2):
            assert "tunnel.up" not in bad.stderr() + bad.stdout()
        logs = server.stderr() + server.stdout()
        assert "guess" not in logs and BIND[1] not in logs
        assert "peer=127.0.0.1:" in logs
    finally:
        legit.close()
        fake.close()


def test_reply_is_the_same_for_existing_and_unknown_tunnels(burrow: Launcher) -> None:
    # No ban during this test: it measures the plain refusal path many times.
    server = burrow.start("server", server_with_creds(ban_budget=0))
    relay = listener_address(server, "relay")
    existing = bind_reply(relay, T1, BIND[0], "wrong")
    unknown = bind_reply(relay, NOWHERE, BIND[0], "wrong")
    assert existing == unknown == bytes([1, Status.UNAUTHORIZED, 0, 0])
    assert bind_reply(relay, NOWHERE, BIND[0], BIND[1]) == existing  # T1's secret opens only T1
    # Timing: interleaved tries, medians compared with a generous bound (the machine is shared;
    # the by-construction proof is tests/server/test_tunnel_auth.py).
    times: dict[str, list[float]] = {T1: [], NOWHERE: []}
    for _ in range(40):
        for tunnel in (T1, NOWHERE):
            start = time.perf_counter()
            assert bind_reply(relay, tunnel, BIND[0], "wrong") == existing
            times[tunnel].append(time.perf_counter() - start)
    a, b = statistics.median(times[T1]), statistics.median(times[NOWHERE])
    assert abs(a - b) < max(0.005, 0.5 * max(a, b)), (a, b)


def test_visitors_need_the_connect_credential(burrow: Launcher, echo_peer: EchoPeer) -> None:
    config = server_with_creds()
    config["services"][0]["handler"]["metadata"]["tunnel.direct"] = True
    server = burrow.start("server", config)
    relay = server.listener("relay").address
    good = burrow.start("client", client(relay, echo_peer.address, BIND))
    good.wait_log(r"tunnel\.up", timeout=UP)

    def visitor(name: str, auth: tuple[str, str] | None) -> BurrowProcess:
        cfg = visitor_config(
            relay, T1, [visitor_service("v", target=HOST + ":0")], dialect="tunnel"
        )
        return burrow.start(name, with_auth(cfg, *auth) if auth is not None else cfg)

    with_cred = visitor("visitor-ok", CONNECT)
    addr = listener_address(with_cred, "visitor")
    got = wait_for("an echo", lambda: exchange(addr, b"ping", 4) or None, UP)
    assert got == b"ping"
    for name, auth in (("visitor-none", None), ("visitor-bind", BIND)):
        vp = visitor(name, auth)
        before = server.stderr().count("authentication failed")
        with socket.create_connection(listener_address(vp, "visitor"), timeout=10.0) as sock:
            sock.sendall(b"ping")
            try:
                data = sock.recv(16)
            except (ConnectionResetError, TimeoutError):
                data = b""
        assert data == b""
        wait_for(
            "the refusal log line",
            lambda n=before: server.stderr().count("authentication failed") > n or None,
            UP,
        )


def bind_status(relay: tuple[str, int], tunnel: str, password: str, source: str) -> int:
    """The status byte of a raw BIND (T1's user name) sent from ``source``."""
    req = RelayRequest(
        Cmd.BIND, (UserAuthFeature(BIND[0], password), TunnelFeature(TunnelId.parse(tunnel), 20))
    )
    with socket.create_connection(relay, timeout=10.0, source_address=(source, 0)) as sock:
        sock.sendall(req.encode())
        reply = b""
        while len(reply) < 2 and (chunk := sock.recv(64)):
            reply += chunk
    assert len(reply) >= 2, reply
    return reply[1]


def test_guessing_a_tunnel_secret_bans_the_source(burrow: Launcher) -> None:
    """Per-tunnel failures feed the same per-source throttle as global logins."""
    server = burrow.start("server", server_with_creds())
    relay = listener_address(server, "relay")
    assert bind_status(relay, T1, BIND[1], "127.0.0.1") == Status.OK
    for n in range(10):
        tunnel = T1 if n % 2 else NOWHERE  # guesses at real and made-up tunnels count alike
        assert bind_status(relay, tunnel, "guess", "127.0.0.1") == Status.UNAUTHORIZED
    server.wait_log(r"relay\.auth_ban source=127\.0\.0\.1", timeout=UP)
    assert bind_status(relay, T1, BIND[1], "127.0.0.1") == Status.UNAUTHORIZED
    assert bind_status(relay, T1, BIND[1], "127.0.0.2") == Status.OK


def test_sighup_rereads_the_credentials_file(burrow: Launcher, tmp_path: Path) -> None:
    secrets = tmp_path / "tunnels.toml"

    def write(password: str) -> None:
        secrets.write_text(f'[[tunnels]]\nid = "{T1}"\nbind = {{ username = "{BIND[0]}", '
                           f'password = "{password}" }}\n')  # fmt: skip
        secrets.chmod(0o600)

    write("first-secret")
    config = server_config([(HOST, T1)], dialect="tunnel")
    config["burrow"] = {"tunnel_auth": {"file": str(secrets), "required": True}}
    server = burrow.start("server", burrow.write_yaml("server", config))
    relay = listener_address(server, "relay")
    assert bind_status(relay, T1, "first-secret", "127.0.0.1") == Status.OK
    write("second-secret")
    server.proc.send_signal(signal.SIGHUP)
    server.wait_log(r"reload\.done", timeout=UP)
    assert bind_status(relay, T1, "first-secret", "127.0.0.1") == Status.UNAUTHORIZED
    assert bind_status(relay, T1, "second-secret", "127.0.0.1") == Status.OK
    assert "first-secret" not in server.stderr() + server.stdout()
