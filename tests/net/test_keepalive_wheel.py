"""The shared keepalive wheel: smux keepalive duties still happen on time, one timer per loop.

Real loopback TCP: MuxConnections (the tunnel server's side) face raw sockets that either stay
silent or answer with NOPs, on uvloop.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable

import uvloop

from burrow.net.keepalive_wheel import SLOT, KeepaliveWheel, wheel_for
from burrow.net.mux import MuxConnection
from burrow.proto.smux import SmuxConfig, SmuxSession

WAIT = 10.0
NOP = bytes((1, 3, 0, 0, 0, 0, 0, 0))  # smux v1 NOP
CFG = SmuxConfig(version=1, keepalive_interval=0.2, keepalive_timeout=0.6)


def run(main: Callable[[], Awaitable[None]]) -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())  # type: ignore[arg-type]


async def mux_pair(closed: dict[MuxConnection, str]) -> tuple[MuxConnection, socket.socket]:
    """A MuxConnection over loopback TCP and the raw peer socket (non-blocking)."""
    loop = asyncio.get_running_loop()
    lst = socket.create_server(("127.0.0.1", 0))
    peer = socket.create_connection(lst.getsockname())
    ours, _ = lst.accept()
    lst.close()
    peer.setblocking(False)
    ours.setblocking(False)
    mux = MuxConnection(
        SmuxSession(CFG, client=True, now=time.monotonic()),
        on_closed=lambda m, why: closed.__setitem__(m, why),
    )
    await loop.connect_accepted_socket(lambda: mux, ours)
    return mux, peer


async def read_nops(peer: socket.socket, n: int) -> float:
    """Seconds until ``n`` NOPs arrived on ``peer``."""
    loop = asyncio.get_running_loop()
    t0 = time.monotonic()
    got = b""
    while len(got) < n * len(NOP):
        chunk = await loop.sock_recv(peer, 4096)
        assert chunk, "connection closed before the NOPs"
        got += chunk
    assert got == NOP * n
    return time.monotonic() - t0


def test_silent_peers_get_nops_then_are_closed_at_the_timeout_by_one_shared_timer() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        closed: dict[MuxConnection, str] = {}
        pairs = [await mux_pair(closed) for _ in range(40)]
        talker, talker_peer = pairs[0]
        wheel = wheel_for(loop)
        assert wheel.ticking and len(wheel) == 40  # one wheel entry each, one loop timer
        async with asyncio.timeout(WAIT):
            # Every session sends a NOP each keepalive_interval, not much later than due.
            took = await read_nops(pairs[1][1], 2)
            assert 0.4 - 0.05 <= took <= 0.4 + 2 * SLOT + 0.3, took
            t0 = time.monotonic()

            async def keep_talking() -> None:
                while not closed.get(talker):
                    await loop.sock_sendall(talker_peer, NOP)
                    await asyncio.sleep(0.1)

            chatter = asyncio.create_task(keep_talking())
            while len(closed) < 39:
                await asyncio.sleep(0.02)
            elapsed = time.monotonic() - t0
        # Silent since they were opened: dead after 1..2 timeouts (xtaci's check cadence).
        assert elapsed <= 2 * CFG.keepalive_timeout + 2 * SLOT + 0.5, elapsed
        silent = {m for m, _ in pairs[1:]}
        assert set(closed) == silent and talker not in closed
        assert all("keepalive timeout" in why for why in closed.values())
        assert not talker.closed
        talker.abort("test over")
        await chatter
        for _, peer in pairs:
            peer.close()

    run(main)


def test_wheel_runs_each_callback_once_after_its_deadline_and_stops_ticking() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        wheel = KeepaliveWheel(loop)
        ran: list[tuple[int, float]] = []
        done = asyncio.Event()
        now = time.monotonic()

        def at(k: int, deadline: float) -> Callable[[], None]:
            def cb() -> None:
                ran.append((k, time.monotonic() - deadline))
                if len(ran) == 4:
                    done.set()

            return cb

        def broken() -> None:
            raise RuntimeError("one bad session")

        wheel.schedule(now + 0.3, at(3, now + 0.3))
        wheel.schedule(now - 5.0, at(0, now))  # overdue: next tick
        wheel.schedule(now + 0.1, broken)
        wheel.schedule(now + 0.1, at(1, now + 0.1))
        wheel.schedule(now + 0.1, at(2, now + 0.1))
        async with asyncio.timeout(WAIT):
            await done.wait()
        assert [k for k, _ in ran] == [0, 1, 2, 3]  # the raising one did not stop the rest
        assert all(0 <= late <= 2 * SLOT + 0.2 for _, late in ran), ran
        async with asyncio.timeout(WAIT):
            while wheel.ticking:  # the tick after the last slot finds nothing and stops
                await asyncio.sleep(SLOT)
        assert len(wheel) == 0
        wheel.close()

    run(main)
