"""TLS and WebSocket layers in one process (uvloop, loopback): bytes, hand-over, flow control."""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
import trustme
import uvloop

from burrow.config.plan_transport import TransportPlan
from burrow.net.layered import LayeredAccept, bridge_socket, dial, is_layered
from burrow.net.recv_buffer import RecvBuffer
from burrow.net.tls import server_context

WAIT = 10.0
NAME = "relay.test"


def run(coro: Callable[[], Coroutine[Any, Any, None]]) -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(coro())


@pytest.fixture(scope="module")
def plans(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, tuple[TransportPlan, TransportPlan]]:
    """(server plan, client plan) per transport, with trustme certificates."""
    tmp: Path = tmp_path_factory.mktemp("pems")
    ca = trustme.CA()
    cert = ca.issue_cert(NAME)
    cert.cert_chain_pems[0].write_to_path(str(tmp / "s.pem"))
    cert.private_key_pem.write_to_path(str(tmp / "s.key"))
    ca.cert_pem.write_to_path(str(tmp / "ca.pem"))
    out = {}
    for kind in ("tls", "ws", "wss"):
        out[kind] = (
            TransportPlan(kind=kind, cert_file=str(tmp / "s.pem"), key_file=str(tmp / "s.key")),  # type: ignore[arg-type]
            TransportPlan(kind=kind, ca_file=str(tmp / "ca.pem"), secure=True, server_name=NAME),  # type: ignore[arg-type]
        )
    return out


class Collect(asyncio.Protocol):
    """Keeps what it reads; ``want`` bytes complete ``done``."""

    def __init__(self, want: int) -> None:
        self.buf = bytearray()
        self.want = want
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if len(self.buf) >= self.want and not self.done.done():
            self.done.set_result(None)


class FirstThenHandOver(asyncio.Protocol):
    """Like the relay request reader: takes 5 bytes, pauses, hands the transport on later."""

    def __init__(self, nxt: Collect) -> None:
        self.nxt = nxt
        self.head = bytearray()
        self.extra = bytearray()  # what came in the same reads, after the head

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t: asyncio.Transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if len(self.head) >= 5:
            raise AssertionError("read after pause_reading")
        need = 5 - len(self.head)
        self.head += data[:need]
        if len(self.head) == 5:
            self.extra += data[need:]
            self.t.pause_reading()
            asyncio.get_running_loop().call_later(0.05, self._hand_over)

    def _hand_over(self) -> None:
        self.t.set_protocol(self.nxt)
        self.nxt.connection_made(self.t)
        if self.extra:
            self.nxt.data_received(bytes(self.extra))
        self.t.resume_reading()


class Echo(asyncio.Protocol):
    """Writes back what it reads, split in two buffers (as smux writes a header and a payload)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t: asyncio.Transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.t.writelines([data[:3], memoryview(data)[3:]])


@pytest.mark.parametrize("kind", ["tls", "ws", "wss"])
def test_large_writelines_both_ways(
    plans: dict[str, tuple[TransportPlan, TransportPlan]], kind: str
) -> None:
    """Writes bigger and smaller than a record or message, both directions, arrive intact
    (client frames masked, server frames sent as header + the caller's buffers)."""
    server_plan, client_plan = plans[kind]
    payload = os.urandom(3 << 20)
    sizes = [8, 300_000, 1, 70_000, 65_536, 17, 1 << 20]

    async def main() -> None:
        loop = asyncio.get_running_loop()
        ctx = server_context(server_plan) if server_plan.uses_tls else None
        failures: list[str] = []
        srv = await loop.create_server(
            lambda: LayeredAccept(server_plan, ctx, Echo, lambda p, w: failures.append(w)),
            "127.0.0.1",
            0,
        )
        port = srv.sockets[0].getsockname()[1]
        async with asyncio.timeout(WAIT):
            t, back = await dial(client_plan, "127.0.0.1", port, lambda: Collect(len(payload)))
            view, off, i = memoryview(payload), 0, 0
            while off < len(payload):
                n = sizes[i % len(sizes)]
                cut = min(8, n)
                t.writelines([view[off : off + cut], view[off + cut : off + n]])
                off += n
                i += 1
            await back.done
        assert bytes(back.buf) == payload and not failures
        t.close()
        srv.close()

    run(main)


@pytest.mark.parametrize("kind", ["tls", "ws", "wss"])
def test_bytes_survive_a_hand_over_after_pause(
    plans: dict[str, tuple[TransportPlan, TransportPlan]], kind: str
) -> None:
    """A request head then 1 MiB in many writes: nothing read after the pause is lost."""
    server_plan, client_plan = plans[kind]
    payload = os.urandom(1 << 20)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        ctx = server_context(server_plan) if server_plan.uses_tls else None
        sink = Collect(len(payload))
        failures: list[str] = []

        def accept() -> LayeredAccept:
            return LayeredAccept(
                server_plan, ctx, lambda: FirstThenHandOver(sink), lambda p, w: failures.append(w)
            )

        srv = await loop.create_server(accept, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        async with asyncio.timeout(WAIT):
            t, _ = await dial(client_plan, "127.0.0.1", port, asyncio.Protocol)
            assert is_layered(t)
            t.write(b"HELLO")
            for i in range(0, len(payload), 7000):
                t.write(payload[i : i + 7000])
            await sink.done
        assert bytes(sink.buf) == payload and not failures
        t.close()
        srv.close()

    run(main)


def test_bridge_socket_carries_a_tls_stream(
    plans: dict[str, tuple[TransportPlan, TransportPlan]],
) -> None:
    """A TLS connection passed on as a plain socket: both directions flow through the pair."""
    server_plan, client_plan = plans["tls"]

    async def main() -> None:
        loop = asyncio.get_running_loop()
        got: asyncio.Future[asyncio.Transport] = loop.create_future()

        class Take(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                transport.pause_reading()  # type: ignore[attr-defined]  # as the relay reader does
                got.set_result(transport)  # type: ignore[arg-type]

        srv = await loop.create_server(
            lambda: LayeredAccept(server_plan, server_context(server_plan), Take, print),
            "127.0.0.1",
            0,
        )
        port = srv.sockets[0].getsockname()[1]
        async with asyncio.timeout(WAIT):
            reply = Collect(5)
            t, _ = await dial(client_plan, "127.0.0.1", port, lambda: reply)
            t.write(b"ping!")
            plain = bridge_socket(await got)
            assert await loop.sock_recv(plain, 5) == b"ping!"
            await loop.sock_sendall(plain, b"pong!")
            await reply.done
        assert bytes(reply.buf) == b"pong!"
        plain.close()
        t.close()
        srv.close()

    run(main)


def test_client_reports_an_untrusted_server(
    plans: dict[str, tuple[TransportPlan, TransportPlan]],
) -> None:
    """secure=true with the wrong CA: the dial fails with the verification reason."""
    server_plan, _ = plans["tls"]
    wrong = TransportPlan(kind="tls", secure=True, server_name=NAME)  # system CAs only

    async def main() -> None:
        loop = asyncio.get_running_loop()
        fails: list[str] = []
        srv = await loop.create_server(
            lambda: LayeredAccept(
                server_plan,
                server_context(server_plan),
                asyncio.Protocol,
                lambda p, w: fails.append(w),
            ),
            "127.0.0.1",
            0,
        )
        port = srv.sockets[0].getsockname()[1]
        with pytest.raises(ConnectionError, match="server certificate refused"):
            async with asyncio.timeout(WAIT):
                await dial(wrong, "127.0.0.1", port, asyncio.Protocol)
        srv.close()

    run(main)
    assert ssl.OPENSSL_VERSION  # the stdlib ssl module is what runs the handshake


class KeepViews(asyncio.Protocol):
    """An app that, like the smux parser, takes views (``takes_views``) and keeps them
    uncopied, as a transport may queue them: later reads must not write into earlier ones."""

    takes_views = True

    def __init__(self, want: int) -> None:
        self.views: list[memoryview] = []
        self.n = 0
        self.want = want
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes | memoryview) -> None:
        self.views.append(memoryview(data))
        self.n += len(data)
        if self.n >= self.want and not self.done.done():
            self.done.set_result(None)


def test_tls_reads_hand_a_view_taking_app_buffers_that_stay_intact(
    plans: dict[str, tuple[TransportPlan, TransportPlan]],
) -> None:
    """8 MiB over TLS to a view-taking app: each socket read arrives as one view of a read
    buffer (several records, no join), and every view kept still holds its bytes at the end."""
    server_plan, client_plan = plans["tls"]
    payload = os.urandom(8 << 20)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        app = KeepViews(len(payload))
        srv = await loop.create_server(
            lambda: LayeredAccept(server_plan, server_context(server_plan), lambda: app, print),
            "127.0.0.1",
            0,
        )
        port = srv.sockets[0].getsockname()[1]
        async with asyncio.timeout(WAIT):
            t, _ = await dial(client_plan, "127.0.0.1", port, asyncio.Protocol)
            view = memoryview(payload)
            for i in range(0, len(payload), 256 * 1024):
                t.write(view[i : i + 256 * 1024])
            await app.done
        assert b"".join(app.views) == payload
        assert all(type(v.obj) is RecvBuffer for v in app.views)
        assert len(app.views) < len(payload) // 16384  # more than one record per delivery
        t.close()
        srv.close()

    run(main)


def test_tls_links_prefer_aes_128_gcm(
    plans: dict[str, tuple[TransportPlan, TransportPlan]],
) -> None:
    """Burrow's dialer and listener settle on TLS_AES_128_GCM_SHA256 (Go's first choice on
    AES hardware, as gost peers use; OpenSSL's default would pick AES-256), and so does a stock
    OpenSSL client against Burrow's listener (the server's order decides)."""
    server_plan, client_plan = plans["tls"]

    ciphers: list[str] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        seen: asyncio.Future[str] = loop.create_future()

        class Report(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                if not seen.done():
                    seen.set_result(transport.get_extra_info("cipher")[0])

        srv = await loop.create_server(
            lambda: LayeredAccept(server_plan, server_context(server_plan), Report, print),
            "127.0.0.1",
            0,
        )
        port = srv.sockets[0].getsockname()[1]
        try:
            async with asyncio.timeout(WAIT):
                t, _ = await dial(client_plan, "127.0.0.1", port, asyncio.Protocol)
                ciphers.append(await seen)
                t.close()
                stock = ssl.create_default_context(cafile=client_plan.ca_file)
                _, w = await asyncio.open_connection(
                    "127.0.0.1", port, ssl=stock, server_hostname=NAME
                )
                ciphers.append(w.get_extra_info("cipher")[0])
                w.close()
        finally:
            srv.close()

    run(main)
    assert ciphers == ["TLS_AES_128_GCM_SHA256", "TLS_AES_128_GCM_SHA256"]
