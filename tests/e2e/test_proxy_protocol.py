"""PROXY protocol, both ends (issue 12, item 3), real processes.

A PROXY-speaking front (the test itself, from 127.0.0.1) sends a header with a spoofed source;
the server trusts it, carries that address in the per-stream header, and the tunnel client
sends the backend a PROXY v2 header naming it. From an untrusted peer the header is refused.
"""

from __future__ import annotations

import socket
from typing import Any

from burrow.common.ids import TunnelId
from burrow.proto.addr import Address
from burrow.proto.proxy_protocol import build_v1, build_v2, detect, parse_proxy_header
from burrow.proto.relay import Cmd, RelayRequest, Status, parse_response
from burrow.proto.relay_features import AddrFeature, TunnelFeature

from .harness import BurrowProcess, Launcher, client_config, client_service, server_config
from .peers import TcpPeer, read_http_head, read_http_response
from .topology import listener_address

T1 = "5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b"
HOST = "app.example.com"
SPOOFED = ("203.0.113.7", 40000)
UP = 20.0


def _record(conn: socket.socket) -> None:
    """Read an optional PROXY header, then answer one HTTP request naming what it saw."""
    buf = b""
    while True:
        found = detect(buf)
        if found is False:
            seen = "no-proxy-header"
            break
        parsed = parse_proxy_header(buf) if found else None
        if parsed is not None:
            header, used = parsed
            buf = buf[used:]
            src = header.src
            seen = f"v{header.version} src={src[0]}:{src[1]}" if src else f"v{header.version} none"
            break
        chunk = conn.recv(4096)
        if not chunk:
            return
        buf += chunk
    if b"\r\n\r\n" not in buf:
        buf += read_http_head(conn)
    body = seen.encode()
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))


class ProxyPeer(TcpPeer):
    """A backend that reports the PROXY header it received (or its absence) in the body."""

    def __init__(self) -> None:
        super().__init__(_record)


def start(
    burrow: Launcher, backend: ProxyPeer, trusted: list[str] | None, client_version: int = 2
) -> BurrowProcess:
    config = server_config([(HOST, T1)], dialect="tunnel")
    if trusted is not None:
        config["services"][0]["metadata"] = {"proxyProtocol": 2, "proxyProtocol.trusted": trusted}
    server = burrow.start("server", config)
    svc: dict[str, Any] = client_service("s", [{"name": "n", "addr": backend.address}])
    svc["handler"]["metadata"] = {"proxyProtocol": client_version}
    relay = server.listener("relay").address
    client = burrow.start("client", client_config(relay, T1, [svc], dialect="tunnel"))
    client.wait_log(r"tunnel\.up", timeout=UP)
    return server


def get(
    addr: tuple[str, int], prefix: bytes = b"", source: str = "127.0.0.1"
) -> tuple[int, bytes] | None:
    """A GET after ``prefix``; None when the server closed the connection instead."""
    with socket.create_connection(addr, timeout=10.0, source_address=(source, 0)) as sock:
        sock.sendall(prefix + f"GET / HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        try:
            return read_http_response(sock)
        except (ConnectionError, TimeoutError):
            return None


def test_backend_sees_the_visitors_real_address(burrow: Launcher) -> None:
    backend = ProxyPeer()
    try:
        server = start(burrow, backend, ["127.0.0.1/32"])
        entry = listener_address(server, "entrypoint")
        front = build_v2(SPOOFED, entry)
        assert get(entry, front) == (200, b"v2 src=203.0.113.7:40000")
        # A v1 header is accepted just the same, and the client still speaks v2 to its backend.
        assert get(entry, build_v1(("198.51.100.9", 1234), entry)) == (
            200, b"v2 src=198.51.100.9:1234",
        )  # fmt: skip
        # Without a header the visitor's own address travels.
        status, body = get(entry) or (0, b"")
        assert status == 200 and body.startswith(b"v2 src=127.0.0.1:")
        # The relay port too: a PROXY header before a visitor's CONNECT.
        relay = listener_address(server, "relay")
        req = RelayRequest(
            Cmd.CONNECT,
            (TunnelFeature(TunnelId.parse(T1), 20), AddrFeature(Address.of(HOST, 0))),
        )
        with socket.create_connection(relay, timeout=10.0) as sock:
            sock.sendall(build_v2(("192.0.2.44", 555), relay) + req.encode())
            buf = b""
            while (parsed := parse_response(buf)) is None:
                chunk = sock.recv(4096)
                assert chunk, "closed before the relay reply"
                buf += chunk
            assert parsed[0].status == Status.OK
            sock.sendall(f"GET / HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
            assert read_http_response(sock) == (200, b"v2 src=192.0.2.44:555")
    finally:
        backend.close()


def test_header_from_an_untrusted_peer_is_refused(burrow: Launcher) -> None:
    backend = ProxyPeer()
    try:
        server = start(burrow, backend, ["127.0.0.2"], client_version=1)
        entry = listener_address(server, "entrypoint")
        assert get(entry, build_v2(SPOOFED, entry), source="127.0.0.1") is None
        server.wait_log(r"proxy\.refused.*untrusted peer.*peer=127\.0\.0\.1:", timeout=UP)
        relay = listener_address(server, "relay")
        assert get(relay, build_v1(SPOOFED, relay), source="127.0.0.1") is None
        server.wait_log(r"proxy\.refused", timeout=UP, count=2)
        # Other connections keep flowing: plain from anyone, PROXY from the trusted address.
        status, body = get(entry, source="127.0.0.1") or (0, b"")
        assert status == 200 and body.startswith(b"v1 src=127.0.0.1:")
        assert get(entry, build_v2(SPOOFED, entry), source="127.0.0.2") == (
            200, b"v1 src=203.0.113.7:40000",
        )  # fmt: skip
    finally:
        backend.close()


def test_proxy_off_plain_connections_and_no_trust(burrow: Launcher) -> None:
    backend = ProxyPeer()
    try:
        server = start(burrow, backend, None)
        entry = listener_address(server, "entrypoint")
        status, body = get(entry) or (0, b"")
        assert status == 200 and body.startswith(b"v2 src=127.0.0.1:")
        # With PROXY off a header is not honoured: the spoofed address never reaches the backend.
        got = get(entry, build_v2(SPOOFED, entry))
        assert got is None or b"203.0.113.7" not in got[1]
    finally:
        backend.close()
