"""ProxyGate on a real Handshake: trusted header stripped (peer replaced), byte by byte,
untrusted or malformed headers closed, no header passed through; on uvloop, bounded waits."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import uvloop

from burrow.proto.proxy_protocol import build_v1, build_v2
from burrow.server.inbound import Handshake, serve_handshakes
from burrow.server.proxy_accept import ProxyGate, gate_for

WAIT = 5.0
Decided = asyncio.Queue[tuple[str, bytes]]


def run(coro: Callable[[], Coroutine[Any, Any, None]]) -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(coro())


class Line(Handshake):
    """Decides on the first full line: records (peer, line)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, gate: ProxyGate, out: Decided) -> None:
        super().__init__(loop, WAIT)
        self.gate = gate
        self.out = out

    def inspect(self) -> None:
        if b"\n" in self.buf:
            self.out.put_nowait((self.peer, bytes(self.buf).partition(b"\n")[0]))
            self.finish().close()

    def give_up(self, why: str) -> None:
        self.out.put_nowait(("gave up", bytes(self.buf)))
        self._drop()


async def exchange(trusted: list[str], chunks: list[bytes]) -> tuple[str, bytes] | None:
    """Send ``chunks`` one by one; what the handshake decided, or None when it closed."""
    loop = asyncio.get_running_loop()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    out: Decided = asyncio.Queue()
    gate = ProxyGate(trusted)
    task = loop.create_task(serve_handshakes(listener, lambda lp: Line(lp, gate, out)))
    try:
        async with asyncio.timeout(WAIT):
            reader, writer = await asyncio.open_connection(*listener.getsockname())
            for chunk in chunks:
                writer.write(chunk)
                await writer.drain()
            await reader.read()  # EOF: decided and closed, or dropped
            writer.close()
        return out.get_nowait() if not out.empty() else None
    finally:
        task.cancel()
        listener.close()


def test_trusted_header_replaces_the_peer_even_byte_by_byte() -> None:
    async def main() -> None:
        raw = build_v2(("203.0.113.7", 40000), ("127.0.0.1", 80)) + b"hello\n"
        assert await exchange(["127.0.0.0/8"], [raw]) == ("203.0.113.7:40000", b"hello")
        split = [raw[i : i + 1] for i in range(len(raw))]
        assert await exchange(["127.0.0.1"], split) == ("203.0.113.7:40000", b"hello")
        v1 = build_v1(("2001:db8::7", 9), ("::1", 80)) + b"six\n"
        assert await exchange(["127.0.0.1"], [v1]) == ("[2001:db8::7]:9", b"six")

    run(main)


def test_no_header_passes_through_and_local_keeps_the_peer() -> None:
    async def main() -> None:
        peer, line = await exchange(["10.0.0.0/8"], [b"PO", b"ST /\n"]) or ("", b"")
        assert peer.startswith("127.0.0.1:") and line == b"POST /"
        local = build_v2(None, None) + b"x\n"
        peer, line = await exchange(["127.0.0.1"], [local]) or ("", b"")
        assert peer.startswith("127.0.0.1:") and line == b"x"

    run(main)


@pytest.mark.parametrize(
    "data",
    [
        build_v2(("203.0.113.7", 1), ("127.0.0.1", 2)) + b"x\n",  # untrusted peer
        build_v1(("203.0.113.7", 1), ("127.0.0.1", 2)) + b"x\n",
    ],
)
def test_untrusted_peer_is_closed(data: bytes) -> None:
    async def main() -> None:
        assert await exchange(["127.0.0.2", "10.0.0.0/8"], [data]) is None

    run(main)


def test_malformed_header_from_a_trusted_peer_is_closed() -> None:
    async def main() -> None:
        assert await exchange(["127.0.0.1"], [b"PROXY TCP4 nonsense\r\nx\n"]) is None

    run(main)


def test_trusts() -> None:
    gate = ProxyGate(["10.0.0.0/8", "2001:db8::/32"])
    assert gate.trusts("10.1.2.3") and gate.trusts("::ffff:10.1.2.3")
    assert gate.trusts("2001:db8::1") and gate.trusts("2001:db8::1%eth0")
    assert not gate.trusts("11.0.0.1") and not gate.trusts("") and not gate.trusts("name")
    assert gate_for(0, ["10.0.0.0/8"]) is None and gate_for(2, []) is not None
