"""UDP over tunnels: the udp visitor against a scripted tunnel server, and the rudp stream bridge.

Everything runs on uvloop over real loopback sockets; every wait is bounded by asyncio.timeout.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
import time
from collections.abc import Callable, Coroutine
from typing import Any, Self, cast

import pytest
import uvloop
from helpers.mux import QuietSink

from burrow.client import udp_forward
from burrow.client.udp_forward import UdpBridge, bridge_stream_to_udp
from burrow.client.udp_session import MAX_QUEUED_DATAGRAMS
from burrow.client.udp_visitor import serve_udp_visitor
from burrow.common.ids import TunnelId, parse_uuid
from burrow.config.plan_types import (
    DEFAULT_SNIFF_TIMEOUT,
    MUX_DEFAULTS,
    Dialect,
    Endpoint,
    ServerNode,
    TargetNode,
    VisitorPlan,
)
from burrow.net.mux import MuxConnection, MuxStream
from burrow.net.udp_batch import UdpSender
from burrow.proto.need import NEED_DATA
from burrow.proto.relay import Cmd, RelayReader, RelayRequest, RelayResponse, Status
from burrow.proto.relay_features import NETWORK_UDP
from burrow.proto.smux import SmuxConfig, SmuxSession
from burrow.proto.udp import DatagramReader, frame_datagram, frame_header

WAIT = 5.0
TID = TunnelId(parse_uuid("4d21094e-b74c-4916-86c1-d9fa36ea677b"))
TARGET = "example.com:0"

Mode = Callable[[int, RelayRequest], str]


def run(coro: Callable[[], Coroutine[Any, Any, None]]) -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(coro())


async def until(pred: Callable[[], bool]) -> None:
    """Wait for a condition on loop state (yielding to the loop between checks)."""
    async with asyncio.timeout(WAIT):
        while not pred():
            await asyncio.sleep(0.005)


# -- a scripted tunnel server ------------------------------------------------------------------
class FakeServer:
    """Accepts visitor CONNECTs; per connection ``mode(index, request)`` picks the behaviour.

    echo: reply OK (relay dialect: glued to the first echo, as gost does), then echo every
    datagram as b"echo:" + payload. refuse: HostUnreachable. silent: never answer.
    hold: tunnel dialect only, reply OK once ``release`` is set, then echo.
    """

    def __init__(self, dialect: Dialect, mode: Mode) -> None:
        self.dialect = dialect
        self.mode = mode
        self.requests: list[RelayRequest] = []
        self.raw_requests: list[bytes] = []
        self.datagrams: dict[int, list[bytes]] = {}
        self.accepted: asyncio.Queue[int] = asyncio.Queue()
        self.ended: asyncio.Queue[int] = asyncio.Queue()  # visitor closed connection <index>
        self.release = asyncio.Event()
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()
        async with asyncio.timeout(WAIT):
            await self.server.wait_closed()

    async def handle(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        idx = len(self.raw_requests)
        self.raw_requests.append(b"")
        self.datagrams[idx] = []
        self.accepted.put_nowait(idx)
        try:
            await self._serve(idx, r, w)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            w.close()
            self.ended.put_nowait(idx)

    async def _serve(self, idx: int, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        rr = RelayReader("request")
        raw = b""
        while (msg := rr.next_event()) is NEED_DATA:
            chunk = await r.read(65536)
            if not chunk:
                return
            raw += chunk
            rr.receive_data(chunk)
        assert isinstance(msg, RelayRequest)
        self.requests.append(msg)
        self.raw_requests[idx] = raw[: len(raw) - len(rr.trailing())]
        reader = DatagramReader()
        reader.receive_data(rr.trailing())
        mode = self.mode(idx, msg)
        if mode == "refuse":
            w.write(RelayResponse(Status.HOST_UNREACHABLE).encode())
        elif mode == "hold":
            await self.release.wait()
        owe_reply = mode != "refuse" and mode != "silent"
        if owe_reply and self.dialect == "tunnel":
            w.write(RelayResponse(Status.OK).encode())
            owe_reply = False
        while True:
            while (d := reader.next_datagram()) is not NEED_DATA:
                assert isinstance(d, bytes)
                self.datagrams[idx].append(d)
                if mode in ("echo", "hold"):
                    head = RelayResponse(Status.OK).encode() if owe_reply else b""
                    owe_reply = False
                    w.write(head + frame_datagram(b"echo:" + d))
            chunk = await r.read(65536)
            if not chunk:
                return
            reader.receive_data(chunk)


class Client(asyncio.DatagramProtocol):
    """A UDP source talking to the visitor."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[bytes] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)  # uvloop's is no subclass

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.inbox.put_nowait(data)

    def send(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.sendto(data)

    async def recv(self) -> bytes:
        async with asyncio.timeout(WAIT):
            return await self.inbox.get()

    @property
    def addr(self) -> str:
        assert self.transport is not None
        host, port = self.transport.get_extra_info("sockname")[:2]
        return f"{host}:{port}"


def make_plan(
    dialect: Dialect, port: int, *, keepalive: bool, ttl: float = 5.0, read_buffer_size: int = 65535
) -> VisitorPlan:
    node = ServerNode(
        addr=Endpoint("127.0.0.1", port),
        dialect=dialect,
        tunnel_id=TID,
        weight=0,
        auth=None,
        mux=MUX_DEFAULTS[dialect],
        connect_timeout=2.0,
        nodelay=False,
        dialer="tcp",
    )
    return VisitorPlan(
        name="udp-visitor",
        network="udp",
        listen=Endpoint("127.0.0.1", 0),
        server=node,
        tunnel_id=TID,
        targets=(TargetNode("target-0", TARGET, None, None, "udp"),),
        sniffing=False,
        sniffing_timeout=DEFAULT_SNIFF_TIMEOUT,
        keepalive=keepalive,
        ttl=ttl,
        read_buffer_size=read_buffer_size,
    )


class Visitor:
    """serve_udp_visitor on a fresh bound socket, plus helpers to make sources."""

    def __init__(self, plan: VisitorPlan) -> None:
        self.plan = plan
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.addr = self.sock.getsockname()
        self.task: asyncio.Task[None] | None = None
        self.clients: list[asyncio.DatagramTransport] = []

    async def __aenter__(self) -> Self:
        self.task = asyncio.create_task(serve_udp_visitor(self.plan, self.sock))
        return self

    async def __aexit__(self, *exc: object) -> None:
        for t in self.clients:
            t.close()
        assert self.task is not None
        self.task.cancel()
        async with asyncio.timeout(WAIT):
            await asyncio.wait([self.task])
        assert self.sock.fileno() == -1  # the visitor owns the socket and closed it

    async def client(self) -> Client:
        loop = asyncio.get_running_loop()
        t, c = await loop.create_datagram_endpoint(Client, remote_addr=self.addr)
        self.clients.append(t)
        return c


def check_request(req: RelayRequest, raw: bytes, dialect: Dialect, src: str) -> None:
    assert req.command == Cmd.CONNECT
    assert req.udp_flag and raw[1] == 0x81  # CONNECT | FUDP
    assert req.network == NETWORK_UDP
    assert req.tunnel_id is not None and req.tunnel_id.uuid == TID.uuid
    if dialect == "relay":
        assert req.tunnel_len == 16
        assert [a.hostport() for a in req.addrs] == [TARGET]
    else:
        assert req.tunnel_len == 20
        assert [a.hostport() for a in req.addrs] == [src, TARGET]


DIALECTS = pytest.mark.parametrize("dialect", ["relay", "tunnel"])


# -- udp visitor ---------------------------------------------------------------------------------
@DIALECTS
def test_keepalive_off_one_reply_per_session(dialect: Dialect) -> None:
    async def main() -> None:
        server = FakeServer(dialect, lambda i, r: "echo")
        await server.start()
        async with Visitor(make_plan(dialect, server.port, keepalive=False)) as v:
            c = await v.client()
            c.send(b"ping-1")
            assert await c.recv() == b"echo:ping-1"
            async with asyncio.timeout(WAIT):
                assert await server.ended.get() == 0  # session closed right after the reply
            c.send(b"ping-2")
            assert await c.recv() == b"echo:ping-2"
            async with asyncio.timeout(WAIT):
                assert await server.ended.get() == 1
            assert len(server.requests) == 2  # a second datagram opened a new connection
            for req, raw in zip(server.requests, server.raw_requests, strict=True):
                check_request(req, raw, dialect, c.addr)
            assert server.datagrams == {0: [b"ping-1"], 1: [b"ping-2"]}
        await server.close()

    run(main)


@DIALECTS
def test_keepalive_on_sizes_and_ttl(dialect: Dialect) -> None:
    ttl = 0.3

    async def main() -> None:
        server = FakeServer(dialect, lambda i, r: "echo")
        await server.start()
        async with Visitor(make_plan(dialect, server.port, keepalive=True, ttl=ttl)) as v:
            c = await v.client()
            payloads = [b"x", os.urandom(1400), os.urandom(60000)]
            for p in payloads:
                c.send(p)
                assert await c.recv() == b"echo:" + p
            last = time.monotonic()
            async with asyncio.timeout(WAIT):
                assert await server.ended.get() == 0
            assert time.monotonic() - last >= ttl * 0.9  # closed by the ttl, not before
            assert len(server.requests) == 1  # one session for all three
            assert server.datagrams[0] == payloads
            check_request(server.requests[0], server.raw_requests[0], dialect, c.addr)
            c.send(b"again")  # a new session after the old one expired
            assert await c.recv() == b"echo:again"
            assert len(server.requests) == 2
        await server.close()

    run(main)


def test_traffic_keeps_session_alive() -> None:
    ttl = 0.4

    async def main() -> None:
        server = FakeServer("relay", lambda i, r: "echo")
        await server.start()
        async with Visitor(make_plan("relay", server.port, keepalive=True, ttl=ttl)) as v:
            c = await v.client()
            start = time.monotonic()
            n = 0
            while time.monotonic() - start < ttl * 2.5:
                c.send(b"tick-%d" % n)
                assert await c.recv() == b"echo:tick-%d" % n
                n += 1
                await asyncio.sleep(ttl / 4)  # pacing the traffic, not synchronisation
            assert len(server.requests) == 1
            assert server.ended.empty()
        await server.close()

    run(main)


@DIALECTS
def test_refusing_server(dialect: Dialect, caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        server = FakeServer(dialect, lambda i, r: "refuse")
        await server.start()
        async with Visitor(make_plan(dialect, server.port, keepalive=True)) as v:
            c = await v.client()
            c.send(b"hello")
            async with asyncio.timeout(WAIT):
                assert await server.ended.get() == 0
            await until(lambda: any(r.getMessage() == "visitor.refused" for r in caplog.records))
            assert c.inbox.empty()
            c.send(b"hello again")  # the refused session is gone: a new one is tried
            async with asyncio.timeout(WAIT):
                assert await server.ended.get() == 1
        await server.close()

    with caplog.at_level(logging.WARNING, logger="burrow"):
        run(main)
    refused = [r for r in caplog.records if r.getMessage() == "visitor.refused"]
    assert len(refused) == 2
    assert refused[0].burrow_fields["status"] == Status.HOST_UNREACHABLE  # type: ignore[attr-defined]


@DIALECTS
def test_silent_server_does_not_block_other_sources(dialect: Dialect) -> None:
    async def main() -> None:
        server = FakeServer(dialect, lambda i, r: "silent" if i == 0 else "echo")
        await server.start()
        async with Visitor(make_plan(dialect, server.port, keepalive=True)) as v:
            a, b = await v.client(), await v.client()
            a.send(b"from-a")
            async with asyncio.timeout(WAIT):
                assert await server.accepted.get() == 0
            b.send(b"from-b")
            assert await b.recv() == b"echo:from-b"
            b.send(b"from-b-2")
            assert await b.recv() == b"echo:from-b-2"
            assert a.inbox.empty()
            assert server.ended.empty()  # a's session is still waiting, within its ttl
        await server.close()

    run(main)


def test_queue_while_connecting_is_bounded() -> None:
    async def main() -> None:
        # Tunnel dialect: datagrams wait for the OK; the server holds source a's OK back.
        holder: list[str] = []
        server = FakeServer(
            "tunnel", lambda i, r: "hold" if r.addrs[0].hostport() in holder else "echo"
        )
        await server.start()
        async with Visitor(make_plan("tunnel", server.port, keepalive=True)) as v:
            a, b = await v.client(), await v.client()
            holder.append(a.addr)
            extra = 40
            for n in range(MAX_QUEUED_DATAGRAMS + extra):
                a.send(b"q%d" % n)
            # One socket, one queue: once b is answered, every datagram of a has been seen.
            b.send(b"marker")
            assert await b.recv() == b"echo:marker"
            server.release.set()
            got = [await a.recv() for _ in range(MAX_QUEUED_DATAGRAMS)]
            assert got == [b"echo:q%d" % n for n in range(MAX_QUEUED_DATAGRAMS)]
            a.send(b"last")  # the session is up: no longer queued
            assert await a.recv() == b"echo:last"
            held = next(i for i, d in server.datagrams.items() if d and d[0] == b"q0")
            assert server.datagrams[held] == [b"q%d" % n for n in range(MAX_QUEUED_DATAGRAMS)] + [
                b"last"
            ]
        await server.close()

    run(main)


def test_dial_failure_drops_source(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()  # nothing listens there now
        async with Visitor(make_plan("relay", port, keepalive=True)) as v:
            c = await v.client()
            c.send(b"one")
            await until(
                lambda: any(r.getMessage() == "visitor.dial_failed" for r in caplog.records)
            )
            c.send(b"two")
            await until(
                lambda: sum(r.getMessage() == "visitor.dial_failed" for r in caplog.records) == 2
            )
            assert c.inbox.empty()

    with caplog.at_level(logging.WARNING, logger="burrow"):
        run(main)
    assert sum(r.getMessage() == "visitor.dial_failed" for r in caplog.records) == 2


# -- rudp stream bridge --------------------------------------------------------------------------
class Echo(asyncio.DatagramProtocol):
    """UDP target: records datagrams, answers b"echo:" + each."""

    def __init__(self) -> None:
        self.got: list[bytes] = []
        self.transport: asyncio.DatagramTransport | None = None
        self.answer = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)  # uvloop's is no subclass

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.got.append(data)
        if self.answer and self.transport is not None:
            self.transport.sendto(b"echo:" + data, addr)


class Collect(QuietSink):
    """StreamSink on the server end: framed datagrams back from the bridge."""

    def __init__(self, stream: MuxStream) -> None:
        self.stream = stream
        self.reader = DatagramReader()
        self.inbox: asyncio.Queue[bytes] = asyncio.Queue()
        self.ended = asyncio.Event()
        self.frames: list[int] = []  # sizes of the chunks delivered

    def stream_data(self, data: bytes | memoryview) -> None:
        self.frames.append(len(data))
        self.reader.receive_data(data)
        self.stream.consumed(len(data))
        while (d := self.reader.next_datagram()) is not NEED_DATA:
            assert isinstance(d, bytes)
            self.inbox.put_nowait(d)

    def stream_ended(self) -> None:
        self.ended.set()

    async def recv(self) -> bytes:
        async with asyncio.timeout(WAIT):
            return await self.inbox.get()


class Tunnel:
    """Two MuxConnections back to back over loopback TCP; the client end bridges to UDP."""

    def __init__(self, version: int, target: tuple[str, int]) -> None:
        self.config = SmuxConfig(version=version)
        self.target = target
        self.client_streams: list[MuxStream] = []
        self.first_bytes: list[bytes] = []
        self.server: MuxConnection | None = None
        self.client: MuxConnection | None = None
        self.listener: asyncio.Server | None = None

    def on_stream(self, stream: MuxStream) -> None:
        # Like the tunnel client: hold the first bytes, then hand over with them as ``early``.
        tunnel = self
        self.client_streams.append(stream)

        class First(QuietSink):
            def stream_data(self, data: bytes | memoryview) -> None:
                # not reported as consumed: early bytes are the bridge's to consume
                tunnel.first_bytes.append(bytes(data))
                bridge_stream_to_udp(stream, "", tunnel.target[1], [bytes(data)])

        stream.sink = First()

    async def __aenter__(self) -> Self:
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        accepted: asyncio.Future[MuxConnection] = loop.create_future()

        def client_factory() -> MuxConnection:
            conn = MuxConnection(
                SmuxSession(self.config, client=False, now=now), on_stream=self.on_stream
            )
            accepted.set_result(conn)
            return conn

        self.listener = await loop.create_server(client_factory, "127.0.0.1", 0)
        port = self.listener.sockets[0].getsockname()[1]
        async with asyncio.timeout(WAIT):
            _, self.server = await loop.create_connection(
                lambda: MuxConnection(SmuxSession(self.config, client=True, now=now)),
                "127.0.0.1",
                port,
            )
            self.client = await accepted
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None and self.listener is not None
        self.server.close()
        self.listener.close()
        async with asyncio.timeout(WAIT):
            await self.listener.wait_closed()

    def open(self) -> tuple[MuxStream, Collect]:
        assert self.server is not None
        stream = self.server.open_stream()
        sink = Collect(stream)
        stream.sink = sink
        return stream, sink

    def bridge(self) -> UdpBridge:
        """The client-side bridge of the first stream."""
        bridge = self.client_streams[0].sink
        assert isinstance(bridge, UdpBridge)
        return bridge

    async def open_echoed(self, first: bytes) -> tuple[MuxStream, Collect, UdpBridge]:
        """A stream whose first datagram went to the echo target and came back."""
        stream, sink = self.open()
        stream.write(frame_datagram(first))
        assert await sink.recv() == b"echo:" + first
        return stream, sink, self.bridge()


async def echo_server() -> tuple[asyncio.DatagramTransport, Echo]:
    loop = asyncio.get_running_loop()
    return await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))


@pytest.mark.parametrize("version", [1, 2])
def test_bridge_split_prefix_and_payload(version: int) -> None:
    async def main() -> None:
        et, echo = await echo_server()
        async with Tunnel(version, et.get_extra_info("sockname")) as tun:
            stream, sink = tun.open()
            payloads = [b"x", os.urandom(1400), os.urandom(60000)]
            # gost rc10's rudp side: the prefix and the payload as two writes (two PSH frames).
            # The first prefix arrives alone, before the bridge exists (its early bytes); later
            # pairs may arrive split or in one read (the mux then hands them on together).
            stream.write(frame_header(len(payloads[0])))
            await until(lambda: bool(tun.first_bytes))
            stream.write(payloads[0])
            for p in payloads[1:]:
                stream.write(frame_header(len(p)))
                stream.write(p)
            for p in payloads:
                assert await sink.recv() == b"echo:" + p
            assert echo.got == payloads
            assert tun.first_bytes[0] == frame_header(1)  # the bridge got a lone prefix as early
            # replies leave framed back to back: a prefix always travels with its payload
            assert sink.frames[0] >= 2 + 6
            assert sum(sink.frames) == sum(2 + 5 + len(p) for p in payloads)
            stream.close()  # the server end closes: the bridge closes its socket
            bridge = tun.bridge()
            await until(lambda: bridge.closed and bridge.sock is None)
        et.close()

    run(main)


def test_bridge_early_bytes_with_whole_datagrams() -> None:
    async def main() -> None:
        et, echo = await echo_server()
        async with Tunnel(1, et.get_extra_info("sockname")) as tun:
            stream, sink = tun.open()
            # first chunk: two whole datagrams and half a prefix, all before the socket exists
            stream.write(frame_datagram(b"a1") + frame_datagram(b"a2") + b"\x00")
            stream.write(b"\x02a3")
            assert {await sink.recv() for _ in range(3)} == {b"echo:a1", b"echo:a2", b"echo:a3"}
            assert sorted(echo.got) == [b"a1", b"a2", b"a3"]
        et.close()

    run(main)


def test_bridge_idle_timeout_closes_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(udp_forward, "IDLE_TIMEOUT", 0.3)

    async def main() -> None:
        et, _ = await echo_server()
        async with Tunnel(2, et.get_extra_info("sockname")) as tun:
            _, sink, bridge = await tun.open_echoed(b"hi")
            start = time.monotonic()
            async with asyncio.timeout(WAIT):
                await sink.ended.wait()
            assert time.monotonic() - start >= 0.25
            assert bridge.sock is None
        et.close()

    run(main)


def test_bridge_drops_while_tunnel_write_paused() -> None:
    async def main() -> None:
        et, echo = await echo_server()
        async with Tunnel(1, et.get_extra_info("sockname")) as tun:
            stream, sink, bridge = await tun.open_echoed(b"one")
            bridge.pause_source()  # as MuxConnection.pause_writing would
            stream.write(frame_datagram(b"two"))
            await until(lambda: bridge.dropped == 1)
            assert echo.got == [b"one", b"two"]  # sent to the target, the answer dropped
            bridge.resume_source()
            stream.write(frame_datagram(b"three"))
            assert await sink.recv() == b"echo:three"
            assert sink.inbox.empty()
        et.close()

    run(main)


# -- batching: many datagrams per wake-up, per write, per GSO send --------------------------------
def burst_sizes() -> list[int]:
    """Runs of equal sizes (GSO batches, one longer than 64, with a shorter last one) and lone
    sizes; small enough in all for default socket buffers (nothing is dropped). No empty one:
    uvloop's datagram endpoint (the echo target) does not deliver those; see the sender test."""
    return [1400] * 20 + [700] + [1400] * 3 + [1, 6000] + [100] * 70 + [101, 100]


def test_bridge_burst_keeps_datagrams_and_order() -> None:
    async def main() -> None:
        et, echo = await echo_server()
        async with Tunnel(2, et.get_extra_info("sockname")) as tun:
            stream, sink, bridge = await tun.open_echoed(b"first")
            payloads = [os.urandom(n) for n in burst_sizes()]
            # one stream write: many framed datagrams per PSH frame, cut at frame boundaries
            stream.write(b"".join(frame_datagram(p) for p in payloads))
            got = [await sink.recv() for _ in payloads]
            assert echo.got == [b"first", *payloads]  # the target saw the same datagrams
            assert got == [b"echo:" + p for p in payloads]  # and its replies came back framed
            assert bridge.sent == len(payloads) + 1 and bridge.dropped == 0
            assert bridge.sender is not None and bridge.sender.gso  # loopback does GSO
        et.close()

    run(main)


def test_bridge_sends_a_reads_frames_one_frame_at_a_time() -> None:
    # The mux merges a stream's frames of one read; a sink without stream_datav (the bridge)
    # still gets them one frame at a time and sends each frame's datagrams as a batch of its
    # own (a 256 KiB read joined into one burst cost the UDP full path ~17 %), and a datagram
    # cut across frames arrives whole.
    async def main() -> None:
        et, echo = await echo_server()
        async with Tunnel(1, et.get_extra_info("sockname")) as tun:
            stream, sink, bridge = await tun.open_echoed(b"first")
            batches: list[int] = []
            send_all = bridge._send_all

            def recording(datagrams: list[bytes | memoryview] | list[bytes]) -> None:
                batches.append(len(datagrams))
                send_all(datagrams)

            bridge._send_all = recording  # type: ignore[method-assign]
            payloads = [os.urandom(1400) for _ in range(70)]
            # One write: smux frames of at most 32 KiB, each cutting a datagram, which loopback
            # delivers in one or a few reads.
            stream.write(b"".join(frame_datagram(p) for p in payloads))
            got = [await sink.recv() for _ in payloads]
            assert echo.got == [b"first", *payloads]
            assert got == [b"echo:" + p for p in payloads]
            assert sum(batches) == 70 and bridge.dropped == 0
            per_frame = tun.config.max_frame_size // (2 + 1400) + 1
            assert max(batches) <= per_frame, batches
        et.close()

    run(main)


class NoGso(socket.socket):
    """A real UDP socket whose kernel 'has no checksum offload': GSO sends fail with EIO."""

    def sendmsg(self, *args: Any, **kwargs: Any) -> int:
        self.refused = getattr(self, "refused", 0) + 1
        raise OSError(errno.EIO, "no GSO here")


def test_sender_falls_back_without_gso() -> None:
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(WAIT)
    tx = NoGso(socket.AF_INET, socket.SOCK_DGRAM)
    tx.connect(rx.getsockname())
    tx.setblocking(False)
    try:
        sender = UdpSender(tx)
        payloads = [b"a" * 100] * 5 + [b"", b"c"] + [b"b" * 100] * 5
        assert sender.send(payloads) == (12, None)
        assert not sender.gso and tx.refused == 1  # tried once, then one at a time for good
        assert sender.send(payloads) == (12, None) and tx.refused == 1
        assert [rx.recv(200) for _ in range(24)] == payloads * 2
    finally:
        tx.close()
        rx.close()


def test_sender_gso_runs_arrive_as_sent() -> None:
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(WAIT)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.connect(rx.getsockname())
    tx.setblocking(False)
    try:
        sender = UdpSender(tx)
        payloads = [os.urandom(n) for n in [300] * 70 + [299, 300, 0, 0, 5, 5, 4, 6]]
        assert sender.send(payloads) == (len(payloads), None)
        assert sender.gso
        assert [rx.recv(400) for _ in payloads] == payloads
    finally:
        tx.close()
        rx.close()


def test_visitor_interleaved_sources_and_long_bursts() -> None:
    async def main() -> None:
        server = FakeServer("relay", lambda i, r: "echo")
        await server.start()
        plan = make_plan("relay", server.port, keepalive=True, read_buffer_size=1000)
        async with Visitor(plan) as v:
            a, b = await v.client(), await v.client()
            a.send(b"a-open")
            assert await a.recv() == b"echo:a-open"
            b.send(b"b-open")
            assert await b.recv() == b"echo:b-open"
            # interleaved, then one source alone for more than one scratch buffer's worth
            sent: dict[str, list[bytes]] = {"a": [], "b": []}
            for n in range(60):
                for name, c in (("a", a), ("b", b)):
                    p = b"%s-%d-" % (name.encode(), n) + os.urandom(n * 10)
                    sent[name].append(p)
                    c.send(p)
            for n in range(400):
                p = b"a-long-%d-" % n + os.urandom(900)
                sent["a"].append(p)
                a.send(p)
            a.send(b"x" * 1500)  # longer than read_buffer_size: cut to it, as gost does
            sent["a"].append(b"x" * 1000)
            # What the server got, not the echoes: those may overflow the sources' buffers.
            want = {0: [b"a-open", *sent["a"]], 1: [b"b-open", *sent["b"]]}
            await until(lambda: all(len(server.datagrams[i]) >= len(want[i]) for i in want))
            assert server.datagrams == want
            assert len(server.requests) == 2  # one session (connection) per source
        await server.close()

    run(main)
