"""LinkPool: member links dialed ahead of forwards, used once, expired unused (real TLS, loopback)."""

from __future__ import annotations

import asyncio
import ssl

import pytest
import uvloop

import burrow.server.forward_links as links
from burrow.net.cluster_tls import cluster_context
from burrow.proto.forward import ACCEPTED, ForwardHeader, decode_forward, encode_forward

SECRET = "link-pool-test-secret-0123456789"
TID = "4d21094e-b74c-4916-86c1-d9fa36ea677b"
DEADLINE = 5.0


class Node:
    """A member's relay port stand-in: TLS with the cluster certificate, answers ACCEPTED."""

    def __init__(self) -> None:
        self.accepted = 0
        self.closed = 0
        self.headers: list[str] = []
        self.changed = asyncio.Event()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.changed.set()
        buf = b""
        try:
            while (got := decode_forward(buf)) is None:
                chunk = await reader.read(4096)
                if not chunk:
                    return
                buf += chunk
            self.headers.append(got[0].tunnel)
            writer.write(ACCEPTED + b"hello")
            await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            self.closed += 1
            self.changed.set()
            writer.close()


async def until(node: Node, cond: object) -> None:
    async with asyncio.timeout(DEADLINE):
        while not cond():  # type: ignore[operator]
            node.changed.clear()
            await node.changed.wait()


def run(coro: object) -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(coro)  # type: ignore[arg-type]


HEADER = encode_forward(ForwardHeader(node="b", kind="visitor", tunnel=TID, network="tcp",
                                      peer="1.2.3.4:5"))  # fmt: skip


async def start_node() -> tuple[Node, asyncio.Server, str]:
    """A member node's forward port on loopback: (its recorder, the server, host:port)."""
    node = Node()
    server = await asyncio.start_server(
        node.serve, "127.0.0.1", 0, ssl=cluster_context(SECRET, server=True)
    )
    return node, server, f"127.0.0.1:{server.sockets[0].getsockname()[1]}"


def test_ready_links_are_dialed_on_use_and_taken_once() -> None:
    async def main() -> None:
        node, server, address = await start_node()
        pool = links.LinkPool(SECRET)
        try:
            assert pool.take(address) is None  # nothing ready yet: the caller dials; READY follow
            await until(node, lambda: node.accepted == links.READY)
            await until(node, lambda: len(pool._ready.get(address, ())) == links.READY)
            link = pool.take(address)
            assert link is not None
            link.tls.write(HEADER)
            async with asyncio.timeout(DEADLINE):
                assert await link.answer.wait() is True
            await until(node, lambda: node.headers == [TID])
            # Taking one dialed its replacement: READY ready again, READY + 1 dialed in all.
            await until(node, lambda: node.accepted == links.READY + 1)
            link.abort()
        finally:
            pool.close()
            server.close()

    run(main())


def test_unused_links_expire(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(links, "READY_AGE", 0.2)

    async def main() -> None:
        node, server, address = await start_node()
        pool = links.LinkPool(SECRET)
        try:
            assert pool.take(address) is None
            # Closed unused, not replaced: nothing more is dialed until the next take.
            await until(node, lambda: node.closed == links.READY)
            assert node.accepted == links.READY and pool._ready == {}
        finally:
            pool.close()
            server.close()

    run(main())


def test_a_link_the_node_closed_is_not_taken() -> None:
    async def main() -> None:
        node, server, address = await start_node()
        pool = links.LinkPool(SECRET)
        try:
            pool.take(address)
            await until(node, lambda: len(pool._ready.get(address, ())) == links.READY)
            for link in pool._ready[address]:
                link.answer.connection_lost(None)  # what the node closing it looks like
            assert pool.take(address) is None
        finally:
            pool.close()
            server.close()

    run(main())
