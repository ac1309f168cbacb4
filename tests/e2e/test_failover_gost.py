"""Failover must not hurt gost tunnel clients, which send no acks (docs/failover.md).

A raw tunnel client plays gost: it BINDs, never sends a NOP, and its "target" takes 1.6 s to
answer, longer than the ack timeout (1 s) that would move a Burrow client's stream. The server
must wait for it: moving the request to the other connector would deliver it twice.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
import uuid

import pytest
from e2e.failover_scenario import HOST, TUNNEL, UP_TIMEOUT, RecordingPeer, request
from e2e.harness import (
    BurrowProcess,
    Launcher,
    client_config,
    client_service,
    forward_node,
    server_config,
)

from burrow.common.ids import TunnelId
from burrow.proto.addr import ATYP_DOMAIN, Address
from burrow.proto.relay import Cmd, RelayRequest, Status, parse_response
from burrow.proto.relay_features import AddrFeature, TunnelFeature
from burrow.proto.smux import FIN, HEADER_SIZE, PSH, SYN, encode_frame

pytestmark = pytest.mark.e2e

THINK = 1.6  # the slow target: above failover_ack_timeout, below failover_silent_timeout


def gost_bind(server: BurrowProcess, dialect: str) -> socket.socket:
    """A raw tunnel connection on TUNNEL after a valid BIND, as a gost client makes it."""
    relay = server.listener("relay")
    sock = socket.create_connection((relay.host, relay.port), timeout=5.0)
    features: list[AddrFeature | TunnelFeature] = []
    if dialect == "tunnel":
        features.append(AddrFeature(Address.from_hostport("127.0.0.1:40000")))
    features.append(AddrFeature(Address("", 0, ATYP_DOMAIN)))
    tid = TunnelId(uuid.UUID(TUNNEL).bytes)
    features.append(TunnelFeature(tid, 16 if dialect == "relay" else 20))
    sock.sendall(RelayRequest(Cmd.BIND, tuple(features)).encode())
    buf = b""
    while (got := parse_response(buf)) is None:
        chunk = sock.recv(4096)
        assert chunk, "server closed the BIND"
        buf += chunk
    response, used = got
    assert response.status == Status.OK and used == len(buf)
    return sock


def read_request(sock: socket.socket, deadline: float) -> tuple[int, bytes] | None:
    """The first stream the server opens and its bytes up to an HTTP head; None at deadline."""
    buf, sid, data = b"", None, b""
    while b"\r\n\r\n" not in data:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return None
        assert chunk, "server closed the tunnel"
        buf += chunk
        while len(buf) >= HEADER_SIZE:
            _ver, cmd, length, s = struct.unpack_from("<BBHI", buf)
            if len(buf) < HEADER_SIZE + length:
                break
            if cmd == SYN and sid is None:
                sid = s
            elif cmd == PSH and s == sid:
                data += buf[HEADER_SIZE : HEADER_SIZE + length]
            buf = buf[HEADER_SIZE + length :]
    assert sid is not None
    return sid, data


@pytest.mark.timeout(60)
@pytest.mark.parametrize("dialect", ["relay", "tunnel"])
def test_a_slow_gost_client_keeps_its_request(burrow: Launcher, dialect: str) -> None:
    version = 1 if dialect == "relay" else 2
    web_b = RecordingPeer("web-b")
    cleanup: list[socket.socket] = []
    try:
        server = burrow.start("server", server_config([(HOST, TUNNEL)], dialect=dialect))
        gost = gost_bind(server, dialect)
        cleanup.append(gost)
        services = [client_service("s", [forward_node("web", web_b.address)])]
        relay = server.listener("relay").address
        burrow.start("client-b", client_config(relay, TUNNEL, services, dialect=dialect))
        server.wait_log(r"tunnel\.up", timeout=UP_TIMEOUT, count=2)
        el = server.listener("entrypoint")
        entry = (el.host, el.port)
        # Requests until one lands on the gost connector (round robin or weighted random).
        for i in range(40):
            path = f"/slow/{i}"
            got: dict[str, str | BaseException] = {}

            def send(path: str = path, got: dict[str, str | BaseException] = got) -> None:
                try:
                    got["name"] = request(entry, path, 8.0)
                except (OSError, ValueError) as exc:
                    got["name"] = exc

            t = threading.Thread(target=send, daemon=True)
            t.start()
            opened = read_request(gost, time.monotonic() + 1.0)
            if opened is None:
                t.join(5.0)
                assert got.get("name") == "web-b", got  # served by the Burrow client instead
                continue
            sid, data = opened
            assert f"GET {path} ".encode() in data
            time.sleep(THINK)  # the target thinking: the behaviour under test, not a wait
            body = f"gost {path}".encode()
            reply = (
                f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            ).encode() + body
            gost.sendall(encode_frame(version, PSH, sid, reply) + encode_frame(version, FIN, sid))
            t.join(8.0)
            assert got.get("name") == "gost", got
            assert path not in web_b.paths, "the gost client's request was also sent elsewhere"
            return
        pytest.fail("no request reached the gost connector")
    finally:
        for sock in cleanup:
            sock.close()
        web_b.close()
