"""Plain relay CONNECT (no tunnel ID): refused by default, proxied when `relay.proxy` is on."""

from __future__ import annotations

import socket

import pytest

from burrow.proto.addr import Address
from burrow.proto.relay import Cmd, RelayRequest, Status, parse_response
from burrow.proto.relay_features import AddrFeature

from .harness import Launcher, server_config
from .peers import EchoPeer

TIMEOUT = 5.0


def connect(relay_port: int, target: str) -> tuple[socket.socket, int, bytes]:
    sock = socket.create_connection(("127.0.0.1", relay_port), timeout=TIMEOUT)
    req = RelayRequest(Cmd.CONNECT, (AddrFeature(Address.from_hostport(target)),))
    sock.sendall(req.encode())
    buf = b""
    while (parsed := parse_response(buf)) is None:
        chunk = sock.recv(4096)
        assert chunk, "closed before a reply"
        buf += chunk
    return sock, parsed[0].status, buf[parsed[1] :]


@pytest.mark.parametrize("enabled", [False, True])
def test_plain_connect(burrow: Launcher, echo_peer: EchoPeer, enabled: bool) -> None:
    md = {"relay.proxy": True} if enabled else {}
    server = burrow.start("server", server_config([], entrypoint=False, metadata=md))
    relay = server.listener("relay").port
    sock, status, rest = connect(relay, f"127.0.0.1:{echo_peer.port}")
    with sock:
        if not enabled:
            assert status == Status.FORBIDDEN  # never an open proxy by default
            return
        assert status == Status.OK
        sock.sendall(b"through the proxy")
        got = rest
        while len(got) < 17:
            chunk = sock.recv(4096)
            assert chunk
            got += chunk
        assert got == b"through the proxy"
