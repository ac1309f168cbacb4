"""BusyPoll: the loop keeps turning for the window after activity, then sleeps again."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

import uvloop

from burrow.net.busypoll import MAX_WINDOW_US, BusyPoll

WAIT = 5.0


def run(coro: Callable[[], Coroutine[Any, Any, None]]) -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(coro())


async def _until_idle(bp: BusyPoll) -> None:
    async with asyncio.timeout(WAIT):
        while bp._spinning:
            await asyncio.sleep(0)


def test_spins_for_the_window_after_the_last_poke_then_stops() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        bp = BusyPoll()
        bp.configure(loop, 20_000)  # clamped
        assert bp.window == MAX_WINDOW_US / 1e6
        bp.configure(loop, 5_000)
        t0 = time.perf_counter()
        bp.poke()
        assert bp._spinning
        fired: list[float] = []
        loop.call_later(0.002, lambda: fired.append(time.perf_counter()))  # timers still run
        bp.poke()  # a second poke while spinning extends the window, no second spinner
        await _until_idle(bp)
        assert time.perf_counter() - t0 >= 0.005
        assert fired

    run(main)


def test_window_zero_never_spins() -> None:
    async def main() -> None:
        bp = BusyPoll()
        bp.configure(asyncio.get_running_loop(), 0)
        bp.poke()
        assert not bp._spinning
        unconfigured = BusyPoll()
        unconfigured.poke()
        assert not unconfigured._spinning

    run(main)
