"""Tunnel client (rtcp) and TCP visitor against scripted fake servers, on uvloop, over loopback.

The fake tunnel server checks the BIND bytes against hand-written expectations (spec
docs/protocol.md, BIND; captures in vectors/*/b_*.txt), replies, then drives a client-side
SmuxSession to open streams and write the per-stream header and payload.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, cast

import pytest
import uvloop
from helpers.mux import Collector

import burrow.client.tunnel as tunnel_mod
from burrow.client.tunnel import TunnelClient
from burrow.client.visitor import serve_tcp_visitor
from burrow.common.ids import TunnelId
from burrow.config.metadata import Endpoint
from burrow.config.plan_types import (
    DEFAULT_CLIENT_SNIFF_TIMEOUT,
    DEFAULT_CONNECT_TIMEOUT,
    MUX_DEFAULTS,
    ServerNode,
    TargetNode,
    TunnelClientPlan,
    VisitorPlan,
)
from burrow.net.mux import MuxConnection, MuxStream
from burrow.proto.addr import Address
from burrow.proto.relay import RelayResponse
from burrow.proto.relay_features import AddrFeature, TunnelFeature
from burrow.proto.smux import SmuxConfig, SmuxSession
from burrow.proto.stream_header import StreamHeader

WAIT = 10.0
UUID_HEX = "4d21094eb74c491686c1d9fa36ea677b"
TID = TunnelId.parse("4d21094e-b74c-4916-86c1-d9fa36ea677b")
CONNECTOR = TunnelId.parse("0b1a2c3d-4e5f-4061-8293-a4b5c6d7e8f9")


def run(main: Callable[[], Awaitable[None]]) -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())  # type: ignore[arg-type]


def server_node(port: int, dialect: str, *, auth: tuple[str, str] | None = None,
                weight: int = 0) -> ServerNode:  # fmt: skip
    return ServerNode(
        addr=Endpoint("127.0.0.1", port), dialect=dialect,  # type: ignore[arg-type]
        tunnel_id=TunnelId(TID.uuid, weight=weight), weight=weight, auth=auth,
        mux=MUX_DEFAULTS[dialect], connect_timeout=DEFAULT_CONNECT_TIMEOUT, nodelay=False, dialer="tcp",
    )  # fmt: skip


def client_plan(
    node: ServerNode,
    nodes: list[TargetNode],
    *,
    network: str = "tcp",
    sniffing: bool = False,
    sniff_timeout: float = DEFAULT_CLIENT_SNIFF_TIMEOUT,
) -> TunnelClientPlan:
    return TunnelClientPlan(
        name="rtcp-0", network=network, server=node,  # type: ignore[arg-type]
        tunnel_id=node.tunnel_id or TID, nodes=tuple(nodes), sniffing=sniffing,
        sniffing_timeout=sniff_timeout,
    )  # fmt: skip


def target(name: str, port: int, host: str | None = None) -> TargetNode:
    return TargetNode(name, f"127.0.0.1:{port}", host, None, "tcp")


# --- local targets -----------------------------------------------------------------------------


class Echo(asyncio.Protocol):
    """Echoes with a prefix; optionally speaks first."""

    def __init__(self, owner: EchoServer) -> None:
        self.owner = owner
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = t = cast(asyncio.Transport, transport)  # uvloop: not a subclass
        self.owner.conns.append(t)
        self.lost = asyncio.Event()
        self.owner.lost.append(self.lost)
        if self.owner.banner:
            t.write(self.owner.banner)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.set()

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(self.owner.prefix + data if self.owner.prefix else data)


class EchoServer:
    def __init__(self, prefix: bytes = b"", banner: bytes = b"") -> None:
        self.prefix = prefix
        self.banner = banner
        self.conns: list[asyncio.Transport] = []
        self.lost: list[asyncio.Event] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> EchoServer:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: Echo(self), "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    def close(self) -> None:
        for t in self.conns:
            t.close()
        if self.server is not None:
            self.server.close()


# --- fake tunnel server ------------------------------------------------------------------------


async def recv_exactly(sock: socket.socket, n: int) -> bytes:
    loop = asyncio.get_running_loop()
    out = bytearray()
    async with asyncio.timeout(WAIT):
        while len(out) < n:
            chunk = await loop.sock_recv(sock, n - len(out))
            if not chunk:
                raise ConnectionError(f"EOF after {len(out)} of {n} bytes")
            out += chunk
    return bytes(out)


async def recv_request(sock: socket.socket) -> bytes:
    """Exactly one relay request: never reads past it (the rest belongs to smux)."""
    head = await recv_exactly(sock, 4)
    return head + await recv_exactly(sock, int.from_bytes(head[2:4], "big"))


class FakeServer:
    """Listening socket plus the steps of gost's server side, scripted per test."""

    def __init__(self) -> None:
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.lsock.setblocking(False)
        self.port = self.lsock.getsockname()[1]
        self.socks: list[socket.socket] = []
        self.muxes: list[MuxConnection] = []

    async def accept(self) -> tuple[socket.socket, tuple[str, int]]:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(WAIT):
            conn, addr = await loop.sock_accept(self.lsock)
        conn.setblocking(False)
        self.socks.append(conn)
        return conn, addr

    async def attach(self, conn: socket.socket, session: SmuxSession) -> MuxConnection:
        loop = asyncio.get_running_loop()
        mux = MuxConnection(session)
        await loop.create_connection(lambda: mux, sock=conn)
        self.socks.remove(conn)
        self.muxes.append(mux)
        return mux

    def close(self) -> None:
        for mux in self.muxes:
            mux.abort("test over")
        for s in self.socks:
            s.close()
        self.lsock.close()


def bind_reply(dialect: str, status: int = 0) -> bytes:
    n = 16 if dialect == "relay" else 20
    if status:
        return RelayResponse(status).encode()
    return RelayResponse(
        0,
        (
            AddrFeature(Address.from_hostport("a6265c6d9847a4be:0", force_domain=True)),
            TunnelFeature(CONNECTOR, n),
        ),
    ).encode()


def expected_bind(dialect: str, src: tuple[str, int], *, udp: bool = False,
                  auth: tuple[str, str] | None = None, weight: int = 0) -> bytes:  # fmt: skip
    """BIND bytes written out by hand from docs/protocol.md, BIND, and the captures."""
    feats = b""
    if udp and dialect == "tunnel":
        feats += bytes.fromhex("040002 0001")
    if auth:
        u, p = auth[0].encode(), auth[1].encode()
        data = bytes([len(u)]) + u + bytes([len(p)]) + p
        feats += b"\x01" + len(data).to_bytes(2, "big") + data
    if dialect == "tunnel":
        ip = bytes(int(x) for x in src[0].split("."))
        feats += bytes.fromhex("020007 01") + ip + src[1].to_bytes(2, "big")
    feats += bytes.fromhex("020004 03000000")
    if dialect == "relay":
        feats += bytes.fromhex("030010" + UUID_HEX)
    else:
        feats += bytes.fromhex("030014" + UUID_HEX + "000000") + bytes([weight])
    cmd = 0x82 if udp else 0x02
    return bytes([1, cmd]) + len(feats).to_bytes(2, "big") + feats


def smux_session(dialect: str) -> SmuxSession:
    mux = MUX_DEFAULTS[dialect]
    cfg = SmuxConfig(version=mux.version, max_stream_buffer=mux.max_stream_buffer)
    return SmuxSession(cfg, client=True, now=time.monotonic())


def header(dst: str | None, src: str = "203.0.113.7:51000") -> bytes:
    d = Address.from_hostport(dst, force_domain=True) if dst is not None else None
    return StreamHeader(Address.from_hostport(src), d).encode()


def open_stream(mux: MuxConnection, data: bytes) -> Collector:
    col = Collector()
    st = mux.open_stream(col)
    col.stream = st
    st.write(data)
    return col


@contextlib.asynccontextmanager
async def running(coro: Awaitable[None]) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.ensure_future(coro)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            async with asyncio.timeout(WAIT):
                await task


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def events(self) -> list[tuple[str, dict[str, Any]]]:
        return [(r.getMessage(), getattr(r, "burrow_fields", {})) for r in self.records]


@pytest.fixture
def records() -> Iterator[Records]:
    handler = Records()
    logger = logging.getLogger("burrow")
    old = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(old)


@pytest.fixture
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tunnel_mod, "BACKOFF_INITIAL", 0.05)
    monkeypatch.setattr(tunnel_mod, "BACKOFF_MAX", 0.1)


# --- tunnel client -----------------------------------------------------------------------------


@pytest.mark.parametrize(("dialect", "size"), [("relay", 1 << 20), ("tunnel", 5 * 1024 * 1024)])
def test_client_binds_and_delivers_both_ways(dialect: str, size: int) -> None:
    async def main() -> None:
        echo = await EchoServer().start()
        fake = FakeServer()
        plan = client_plan(server_node(fake.port, dialect), [target("app", echo.port)])
        try:
            async with running(TunnelClient(plan).run()):
                conn, peer = await fake.accept()
                assert await recv_request(conn) == expected_bind(dialect, peer)
                # Reply and the first stream's SYN + header + payload in ONE write: the client
                # must not lose what follows its reply in the same read.
                session = smux_session(dialect)
                sid, syn = session.open_stream()
                bufs, _ = session.send(sid, header("app.local:0") + b"early")
                loop = asyncio.get_running_loop()
                await loop.sock_sendall(conn, bind_reply(dialect) + syn + b"".join(bufs))
                mux = await fake.attach(conn, session)
                first = Collector()
                st = MuxStream(sid, mux)
                st.sink, first.stream = first, st
                mux.streams[sid] = st
                assert await first.wait_len(5) == b"early"

                blob = os.urandom(size)
                col = open_stream(mux, header("app.local:0") + blob)
                got = await col.wait_len(size)
                assert hashlib.sha256(got).digest() == hashlib.sha256(blob).digest()
                # Closing the stream closes the local connection (no half-close, §3.6).
                col.stream.close()  # type: ignore[union-attr]
                async with asyncio.timeout(WAIT):
                    await echo.lost[1].wait()
        finally:
            fake.close()
            echo.close()

    run(main)


@pytest.mark.parametrize(
    ("dialect", "udp", "auth", "weight"),
    [("relay", True, ("user", "pass"), 0), ("tunnel", True, ("u", "p@ss"), 7),
     ("tunnel", False, None, 255)],
)  # fmt: skip
def test_bind_bytes_variants(dialect: str, udp: bool, auth: tuple[str, str] | None,
                             weight: int) -> None:  # fmt: skip
    async def main() -> None:
        fake = FakeServer()
        node = server_node(fake.port, dialect, auth=auth, weight=weight)
        plan = client_plan(node, [target("app", 9)], network="udp" if udp else "tcp")
        try:
            async with running(TunnelClient(plan).run()):
                conn, peer = await fake.accept()
                got = await recv_request(conn)
                assert got == expected_bind(dialect, peer, udp=udp, auth=auth, weight=weight)
        finally:
            fake.close()

    run(main)


def test_node_selection_by_header_host_with_fallback() -> None:
    async def main() -> None:
        servers = [await EchoServer(prefix=p).start() for p in (b"A:", b"B:", b"C:")]
        a, b, c = servers
        fake = FakeServer()
        nodes = [target("a", a.port, "a.example"), target("b", b.port, ".b.example"),
                 target("c", c.port)]  # fmt: skip
        plan = client_plan(server_node(fake.port, "tunnel"), nodes)
        try:
            async with running(TunnelClient(plan).run()):
                conn, _ = await fake.accept()
                await recv_request(conn)
                await asyncio.get_running_loop().sock_sendall(conn, bind_reply("tunnel"))
                mux = await fake.attach(conn, smux_session("tunnel"))
                cases = [("a.example:80", b"A:"), ("x.b.example:443", b"B:"),
                         ("B.EXAMPLE:0", b"B:"), ("other.org:0", b"C:")]  # fmt: skip
                for dst, want in cases:
                    col = open_stream(mux, header(dst) + b"hi")
                    assert await col.wait_len(len(want) + 2) == want + b"hi", dst
        finally:
            fake.close()
            for s in servers:
                s.close()

    run(main)


def test_no_candidate_node_closes_the_stream(records: Records) -> None:
    async def main() -> None:
        echo = await EchoServer().start()
        fake = FakeServer()
        plan = client_plan(server_node(fake.port, "relay"), [target("a", echo.port, "a.example")])
        try:
            async with running(TunnelClient(plan).run()):
                conn, _ = await fake.accept()
                await recv_request(conn)
                await asyncio.get_running_loop().sock_sendall(conn, bind_reply("relay"))
                mux = await fake.attach(conn, smux_session("relay"))
                col = open_stream(mux, header("nobody.example:0") + b"x")
                await col.wait_ended()
                assert bytes(col.buf) == b""
                assert echo.conns == []
                # The tunnel itself stays up: a matching stream still works.
                ok = open_stream(mux, header("a.example:0") + b"yes")
                assert await ok.wait_len(3) == b"yes"
        finally:
            fake.close()
            echo.close()

    run(main)
    dropped = [f for name, f in records.events() if name == "stream.dropped"]
    assert dropped and dropped[0]["reason"] == "no forwarder node"


def test_bad_stream_header_closes_only_that_stream() -> None:
    async def main() -> None:
        echo = await EchoServer().start()
        fake = FakeServer()
        plan = client_plan(server_node(fake.port, "tunnel"), [target("a", echo.port)])
        try:
            async with running(TunnelClient(plan).run()):
                conn, _ = await fake.accept()
                await recv_request(conn)
                await asyncio.get_running_loop().sock_sendall(conn, bind_reply("tunnel"))
                mux = await fake.attach(conn, smux_session("tunnel"))
                bad = open_stream(mux, b"\x01\x06\x00\x00payload")  # status 6: not a header
                await bad.wait_ended()
                split = Collector()
                st = mux.open_stream(split)
                split.stream = st
                raw = header("a.example:0") + b"ok"
                for i in range(len(raw)):  # one byte per frame: header parsing is incremental
                    st.write(raw[i : i + 1])
                assert await split.wait_len(2) == b"ok"
                assert not mux.closed
        finally:
            fake.close()
            echo.close()

    run(main)


def test_sniffing_routes_http_by_host_and_tolerates_silent_clients() -> None:
    async def main() -> None:
        a = await EchoServer(prefix=b"A:", banner=b"BANNER-A").start()
        c = await EchoServer(prefix=b"C:").start()
        fake = FakeServer()
        nodes = [target("a", a.port, "web.example"), target("c", c.port)]
        plan = client_plan(server_node(fake.port, "tunnel"), nodes, sniffing=True,
                           sniff_timeout=0.2)  # fmt: skip
        try:
            async with running(TunnelClient(plan).run()):
                conn, _ = await fake.accept()
                await recv_request(conn)
                await asyncio.get_running_loop().sock_sendall(conn, bind_reply("tunnel"))
                mux = await fake.attach(conn, smux_session("tunnel"))
                req = b"GET / HTTP/1.1\r\nHost: web.example:8080\r\n\r\n"
                # HTTP Host wins over the header host (docs/configuration.md, node choice).
                col = open_stream(mux, header("other.org:0") + req)
                want = b"BANNER-A" + b"A:" + req
                assert await col.wait_len(len(want)) == want
                # Server-speaks-first: nothing to sniff; after the timeout the header host routes.
                silent = open_stream(mux, header("web.example:22"))
                assert await silent.wait_len(8) == b"BANNER-A"
        finally:
            fake.close()
            a.close()
            c.close()

    run(main)


def test_reconnects_after_drop_and_after_refusal(records: Records, fast_backoff: None) -> None:
    async def main() -> None:
        echo = await EchoServer().start()
        fake = FakeServer()
        plan = client_plan(server_node(fake.port, "relay"), [target("a", echo.port)])
        loop = asyncio.get_running_loop()
        try:
            async with running(TunnelClient(plan).run()):
                conn, peer = await fake.accept()
                assert await recv_request(conn) == expected_bind("relay", peer)
                await loop.sock_sendall(conn, bind_reply("relay", status=2))  # Unauthorized
                conn, peer = await fake.accept()
                assert await recv_request(conn) == expected_bind("relay", peer)
                await loop.sock_sendall(conn, bind_reply("relay"))
                conn.close()
                fake.socks.remove(conn)
                conn, peer = await fake.accept()
                assert await recv_request(conn) == expected_bind("relay", peer)
                await loop.sock_sendall(conn, bind_reply("relay"))
                mux = await fake.attach(conn, smux_session("relay"))
                col = open_stream(mux, header(None) + b"again")
                assert await col.wait_len(5) == b"again"
        finally:
            fake.close()
            echo.close()

    run(main)
    names = [n for n, _ in records.events()]
    assert names.count("tunnel.up") == 2
    assert "tunnel.down" in names and "tunnel.retry" in names
    refused = [f for n, f in records.events() if n == "tunnel.refused"]
    assert refused[0]["status"] == "2 Unauthorized"
    up = next(f for n, f in records.events() if n == "tunnel.up")
    assert up["connector"] == CONNECTOR.text and up["addr"] == "a6265c6d9847a4be:0"


class UdpEcho(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(b"echo:" + data, addr)


def test_rudp_streams_reach_a_udp_target() -> None:
    """rudp: after the header, the stream carries 2-byte-length framed datagrams (§8)."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(UdpEcho, local_addr=("127.0.0.1", 0))
        port = transport.get_extra_info("sockname")[1]
        fake = FakeServer()
        node = TargetNode("dns", f"127.0.0.1:{port}", None, None, "udp")
        plan = client_plan(server_node(fake.port, "tunnel"), [node], network="udp")
        try:
            async with running(TunnelClient(plan).run()):
                conn, peer = await fake.accept()
                assert await recv_request(conn) == expected_bind("tunnel", peer, udp=True)
                await loop.sock_sendall(conn, bind_reply("tunnel"))
                mux = await fake.attach(conn, smux_session("tunnel"))
                col = open_stream(mux, header("dns.example:0") + b"\x00\x04ping")
                assert await col.wait_len(11) == b"\x00\x09echo:ping"
        finally:
            fake.close()
            transport.close()

    run(main)


# --- TCP visitor -------------------------------------------------------------------------------


def visitor_plan(node: ServerNode, targets: list[str], *, sniffing: bool = False) -> VisitorPlan:
    return VisitorPlan(
        name="visitor-0", network="tcp", listen=Endpoint("127.0.0.1", 0), server=node,
        tunnel_id=node.tunnel_id or TID,
        targets=tuple(TargetNode(f"t{i}", t, None, None, "tcp") for i, t in enumerate(targets)),
        sniffing=sniffing, sniffing_timeout=1.0, keepalive=False, ttl=5.0,
        read_buffer_size=65535,
    )  # fmt: skip


def listening() -> socket.socket:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    return s


async def open_client(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    async with asyncio.timeout(WAIT):
        return await asyncio.open_connection("127.0.0.1", port)


async def closed_by_peer(reader: asyncio.StreamReader) -> bytes:
    async with asyncio.timeout(WAIT):
        return await reader.read()


@contextlib.asynccontextmanager
async def visitor_against_fake(
    dialect: str, targets: list[str], *, sniffing: bool = False
) -> AsyncIterator[tuple[FakeServer, int]]:
    """A tcp visitor serving on a fresh port, dialling a FakeServer: (fake, visitor port)."""
    fake = FakeServer()
    lsock = listening()
    plan = visitor_plan(server_node(fake.port, dialect), targets, sniffing=sniffing)
    try:
        async with running(serve_tcp_visitor(plan, lsock)):
            yield fake, lsock.getsockname()[1]
    finally:
        fake.close()
        lsock.close()


def test_visitor_with_a_server_that_replies_late(records: Records) -> None:
    """rc-era server: the reply comes glued to the first bytes back from the tunnel."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        async with visitor_against_fake("relay", ["srv-2.local:0"]) as (fake, port):
            reader, writer = await open_client(port)
            conn, _ = await fake.accept()
            req = await recv_request(conn)
            assert req[:4] == bytes.fromhex("01010025")
            assert req[4:] == (bytes.fromhex("02000f 030b") + b"srv-2.local"
                               + bytes.fromhex("0000 030010" + UUID_HEX))  # fmt: skip
            writer.write(b"ping")
            assert await recv_exactly(conn, 4) == b"ping"
            await loop.sock_sendall(conn, b"\x01\x00\x00\x00" + b"pong")
            async with asyncio.timeout(WAIT):
                assert await reader.readexactly(4) == b"pong"
            await loop.sock_sendall(conn, b"more")
            async with asyncio.timeout(WAIT):
                assert await reader.readexactly(4) == b"more"
            # The server ends: the visitor connection ends too.
            conn.close()
            fake.socks.remove(conn)
            assert await closed_by_peer(reader) == b""
            writer.close()

    run(main)


def test_visitor_tunnel_dialect_immediate_reply_and_sniffing() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        async with visitor_against_fake("tunnel", [], sniffing=True) as (fake, port):
            reader, writer = await open_client(port)
            req = b"GET / HTTP/1.1\r\nHost: web.local:8080\r\n\r\n"
            writer.write(req)
            conn, _ = await fake.accept()
            got = await recv_request(conn)
            client_port = writer.get_extra_info("sockname")[1]
            dst = b"web.local"
            want_feats = (
                bytes.fromhex("020007 01 7f000001") + client_port.to_bytes(2, "big")
                + bytes.fromhex("02000d 0309") + dst + (8080).to_bytes(2, "big")
                + bytes.fromhex("030014" + UUID_HEX + "00000000")
            )  # fmt: skip
            assert got == bytes([1, 1]) + len(want_feats).to_bytes(2, "big") + want_feats
            await loop.sock_sendall(conn, b"\x01\x00\x00\x00")
            assert await recv_exactly(conn, len(req)) == req  # sniffed bytes replayed
            await loop.sock_sendall(conn, b"HTTP/1.1 200 OK\r\n\r\n")
            async with asyncio.timeout(WAIT):
                assert await reader.readexactly(19) == b"HTTP/1.1 200 OK\r\n\r\n"
            writer.close()
            async with asyncio.timeout(WAIT):
                assert await loop.sock_recv(conn, 10) == b""

    run(main)


def test_visitor_refused_closes_the_connection(records: Records) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        async with visitor_against_fake("tunnel", ["ssh.srv-2.local:0"]) as (fake, port):
            reader, writer = await open_client(port)
            conn, _ = await fake.accept()
            await recv_request(conn)
            await loop.sock_sendall(conn, b"\x01\x06\x00\x00")  # Host Unreachable
            assert await closed_by_peer(reader) == b""
            writer.close()

    run(main)
    refused = [f for n, f in records.events() if n == "visitor.refused"]
    assert refused and refused[0]["status"] == "6 Host Unreachable"
    assert refused[0]["target"] == "ssh.srv-2.local:0"
