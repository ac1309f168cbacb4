"""Hostile and broken peers against a real server's relay port (relay §5, tunnel-mode §11).

Each bad peer gets its status or a close, and a healthy request through the same server (one
worker, so the same event loop) keeps working while the bad peer is still connected.
"""

from __future__ import annotations

import re
import socket
import struct
import time
import uuid

import pytest
from e2e.conftest import TUNNEL_A, TUNNEL_B, TUNNEL_SVC
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
from e2e.peers import EchoPeer, HttpPeer, exchange, recv_exactly
from e2e.topology import listener_address, start_with_client, wait_healthy

UP_TIMEOUT = 8.0
READ_TIMEOUT = "1s"  # the server's request read timeout in these tests, so silent peers end fast
CLOSE_WITHIN = 6.0
MAX_RSS_GROWTH = 64 * 1024 * 1024

STATUS_SERVICE_UNAVAILABLE = 0x05
STATUS_HOST_UNREACHABLE = 0x06


def feature(ftype: int, data: bytes) -> bytes:
    """One TLV feature (docs/protocol.md, Features)."""
    return struct.pack("!BH", ftype, len(data)) + data


def addr_feature(host: str, port: int) -> bytes:
    """Addr feature with a domain-name address (§6.2)."""
    raw = host.encode()
    return feature(0x02, bytes([0x03, len(raw)]) + raw + struct.pack("!H", port))


def tunnel_feature(tunnel: str) -> bytes:
    """16-byte tunnel feature, relay dialect (§6.3)."""
    return feature(0x03, uuid.UUID(tunnel).bytes)


def request(cmd: int, features: bytes) -> bytes:
    """VER=1, CMD, FEALEN, FEATURES (§2)."""
    return struct.pack("!BBH", 0x01, cmd, len(features)) + features


def connect(target: str, tunnel: str) -> bytes:
    """A relay-dialect visitor CONNECT for `host:port` on `tunnel`."""
    host, _, port = target.rpartition(":")
    return request(0x01, addr_feature(host, int(port)) + tunnel_feature(tunnel))


def read_reply_or_close(sock: socket.socket, timeout: float = CLOSE_WITHIN) -> bytes:
    """Everything the server sends until it closes (bounded); b'' means a bare close."""
    sock.settimeout(timeout)
    buf = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return buf
        if not chunk:
            return buf
        buf += chunk


@pytest.fixture
def setup(
    burrow: Launcher, web: HttpPeer, echo_peer: EchoPeer
) -> tuple[BurrowProcess, tuple[str, int], tuple[str, int]]:
    """Server (1 worker, 1 s read timeout) with a client on TUNNEL_A serving web and echo."""
    cfg = server_config(
        [(".example.com", TUNNEL_A), ("idle.local", TUNNEL_SVC)],
        metadata={"readTimeout": READ_TIMEOUT},
    )
    nodes = [
        forward_node("echo", echo_peer.address, "echo.example.com"),
        forward_node("web", web.address),
    ]
    server, _ = start_with_client(
        burrow, cfg, TUNNEL_A, nodes, workers=1, timeout=UP_TIMEOUT, sniffing=True
    )
    entry_addr = listener_address(server, "entrypoint")
    healthy(entry_addr)
    return server, listener_address(server, "relay"), entry_addr


def healthy(entry: tuple[str, int]) -> None:
    """A normal request through the entry point succeeds (retrying while the tunnel comes up)."""
    wait_healthy(entry, UP_TIMEOUT)


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", id="http-garbage"),
        pytest.param(b"\x05\x01\x00\x00", id="bad-version"),
        pytest.param(b"\x01\x01\x00\x10" + b"\x02\x00\x07", id="truncated-features"),
        pytest.param(b"\x01\x01", id="truncated-header"),
        pytest.param(request(0x01, feature(0x7E, b"xx")), id="unknown-feature"),
        pytest.param(b"\x01\x01\x00\x05" + b"\x02\xff\xff\x03\x00", id="feature-len-past-block"),
        pytest.param(
            b"\x01\x01\xff\xff" + b"\x02\xff\xfc" + b"\x00" * 65532, id="oversized-features"
        ),
    ],
)
def test_malformed_request_is_closed(setup, payload: bytes) -> None:
    """Framing errors: a close with no relay response (or a non-OK status), never a hang."""
    _, relay, entry = setup
    with socket.create_connection(relay, timeout=5.0) as sock:
        sock.sendall(payload)
        healthy(entry)  # while the bad peer is still connected
        got = read_reply_or_close(sock)
    # gost sends nothing for framing errors; a Burrow status reply is tolerated if it is not OK.
    assert got == b"" or (len(got) >= 4 and got[0] == 0x01 and got[1] != 0x00), got
    healthy(entry)


def test_connect_unknown_tunnel_gets_host_unreachable(setup) -> None:
    """CONNECT naming a tunnel the host is not mapped to: status 6, then close."""
    _, relay, entry = setup
    with socket.create_connection(relay, timeout=5.0) as sock:
        sock.sendall(connect("www.example.com:80", str(uuid.uuid4())))
        got = read_reply_or_close(sock)
    assert got[:2] == bytes([0x01, STATUS_HOST_UNREACHABLE]), got
    healthy(entry)


def test_connect_tunnel_without_client_gets_service_unavailable(setup) -> None:
    """CONNECT to a mapped tunnel nobody serves: status 5, then close."""
    _, relay, entry = setup
    with socket.create_connection(relay, timeout=5.0) as sock:
        sock.sendall(connect("idle.local:0", TUNNEL_SVC))
        got = read_reply_or_close(sock)
    assert got[:2] == bytes([0x01, STATUS_SERVICE_UNAVAILABLE]), got
    healthy(entry)


def test_silent_visitor_is_closed(setup) -> None:
    """A peer that connects and never sends: the server closes it after its read timeout."""
    _, relay, entry = setup
    with socket.create_connection(relay, timeout=5.0) as sock:
        started = time.monotonic()
        healthy(entry)
        assert read_reply_or_close(sock) == b""
        assert time.monotonic() - started < CLOSE_WITHIN


def test_silent_after_connect_does_not_block_others(setup) -> None:
    """A visitor that sends a valid CONNECT then nothing: its stream waits, others are served."""
    _, relay, entry = setup
    with socket.create_connection(relay, timeout=5.0) as sock:
        sock.sendall(connect("echo.example.com:0", TUNNEL_A))
        for _ in range(3):
            healthy(entry)
        # Then it talks after all: the held-open stream still works end to end.
        sock.sendall(b"late ping")
        reply = recv_exactly(sock, 4 + len(b"late ping"))
        assert reply[:2] == b"\x01\x00" and reply.endswith(b"late ping"), reply


def test_payload_glued_to_the_connect(setup) -> None:
    """rc-era visitors send payload right behind the CONNECT, often in the same segment: the
    server reads it with the request and it must still reach the target, first and in order."""
    _, relay, _ = setup
    with socket.create_connection(relay, timeout=5.0) as sock:
        sock.sendall(connect("echo.example.com:0", TUNNEL_A) + b"glued ping")
        reply = recv_exactly(sock, 4 + len(b"glued ping"))
        assert reply[:2] == b"\x01\x00" and reply.endswith(b"glued ping"), reply
        sock.sendall(b" and more")
        assert recv_exactly(sock, len(b" and more")) == b" and more"


def worker_rss(server: BurrowProcess) -> int:
    """Total resident memory of the server's workers (pids from its worker.started lines)."""
    total = 0
    for pid in re.findall(r"worker\.started worker=\d+ pid=(\d+)", server.stderr()):
        try:
            with open(f"/proc/{pid}/status") as fh:
                status = fh.read()
        except FileNotFoundError:
            continue
        m = re.search(r"VmRSS:\s+(\d+) kB", status)
        total += int(m.group(1)) * 1024 if m else 0
    return total


def flood_until_stalled(sock: socket.socket, first: bytes = b"") -> int:
    """Send without ever reading until the peer stops taking data for 0.5 s; bytes sent."""
    block = b"\xab" * 65536
    sock.sendall(first + block)
    sock.setblocking(False)
    sent = len(block)
    deadline = time.monotonic() + 8.0
    stalled_since: float | None = None
    while time.monotonic() < deadline:
        try:
            sent += sock.send(block)
            stalled_since = None
        except BlockingIOError:
            stalled_since = stalled_since or time.monotonic()
            if time.monotonic() - stalled_since > 0.5:
                sock.setblocking(True)
                return sent
            time.sleep(0.01)  # polling a non-blocking socket, not synchronisation
    raise AssertionError(f"still accepting data after {sent} bytes that were never read back")


@pytest.mark.parametrize("dialect", ["relay", "tunnel"])
def test_visitor_that_stops_reading(
    burrow: Launcher, web: HttpPeer, echo_peer: EchoPeer, dialect: str
) -> None:
    """A visitor floods an echo target, never reading: memory stays bounded, others are served.

    The flood runs on its own tunnel: smux v1 (relay dialect) has no per-stream flow control, so a
    stalled stream blocks its whole session by design (docs/protocol.md, smux frames). With smux v2
    a second stream on the flooded session must still work too.
    """
    server = burrow.start(
        "server",
        server_config([(".example.com", TUNNEL_A), ("flood.local", TUNNEL_B)], dialect=dialect),
        workers=1,
    )
    relay = server.listener("relay").address
    for name, tunnel, target in (
        ("client-web", TUNNEL_A, web),
        ("client-echo", TUNNEL_B, echo_peer),
    ):
        bp = burrow.start(
            name,
            client_config(
                relay,
                tunnel,
                [client_service("s", [forward_node("t", target.address)])],
                dialect=dialect,
            ),
        )
        bp.wait_log(r"tunnel\.up", timeout=UP_TIMEOUT)
    visitor = burrow.start(
        "visitor",
        visitor_config(
            relay, TUNNEL_B, [visitor_service("flood", target="flood.local:0")], dialect=dialect
        ),
    )
    entry_item = server.listener("entrypoint")
    entry = (entry_item.host, entry_item.port)
    flood_item = visitor.listener("visitor")
    flood = (flood_item.host, flood_item.port)
    healthy(entry)
    wait_for("echo through the visitor", lambda: exchange(flood, b"hi", 2, timeout=2.0), UP_TIMEOUT)
    before = worker_rss(server)

    with socket.create_connection(flood, timeout=5.0) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sent = flood_until_stalled(sock)
        assert sent < 200 * 1024 * 1024
        healthy(entry)
        if dialect == "tunnel":
            assert exchange(flood, b"second stream", 13) == b"second stream"
        growth = worker_rss(server) - before
        assert growth < MAX_RSS_GROWTH, f"server worker RSS grew by {growth} bytes"
    healthy(entry)


def tunnel_connect(target: str, tunnel: str) -> bytes:
    """A tunnel-dialect CONNECT: Addr(src) Addr(dst=target) Tunnel(20 bytes, weight 0)."""
    host, _, port = target.rpartition(":")
    src = addr_feature("127.0.0.1", 40000)
    return request(
        0x01,
        src + addr_feature(host, int(port)) + feature(0x03, uuid.UUID(tunnel).bytes + bytes(4)),
    )


def test_tunnel_dialect_statuses(burrow: Launcher) -> None:
    """Tunnel dialect (§11): unknown tunnel CONNECT -> 6, no connector -> 5, zero-ID BIND -> 1."""
    server = burrow.start(
        "server", server_config([("idle.local", TUNNEL_SVC)], dialect="tunnel"), workers=1
    )
    item = server.listener("relay")
    relay = (item.host, item.port)
    zero_bind = request(
        0x02, addr_feature("", 0) + addr_feature("0.0.0.0", 0) + feature(0x03, bytes(20))
    )
    cases = [
        (tunnel_connect("www.example.com:80", str(uuid.uuid4())), STATUS_HOST_UNREACHABLE),
        (tunnel_connect("idle.local:0", TUNNEL_SVC), STATUS_SERVICE_UNAVAILABLE),
        (zero_bind, 0x01),
    ]
    for payload, want in cases:
        with socket.create_connection(relay, timeout=5.0) as sock:
            sock.sendall(payload)
            got = read_reply_or_close(sock)
        assert got[:2] == bytes([0x01, want]), (payload.hex(), got)
