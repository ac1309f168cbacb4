"""IdleWatch over real loopback connections on uvloop: silent pipes closed, busy and gone ones not."""

from __future__ import annotations

import asyncio
import socket
import sys

from helpers.mux import QuietSink, mux_pair
from helpers.mux import run_uvloop as run

from burrow.net.idlewatch import IdlePipe, IdleWatch
from burrow.net.mux import MuxStream
from burrow.server.failover import FailoverPipe

WAIT = 5.0


async def _piped(watch: IdleWatch, stream: MuxStream) -> tuple[IdlePipe, socket.socket]:
    """An IdlePipe on ``stream`` joined to one end of a fresh loopback TCP connection."""
    loop = asyncio.get_running_loop()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        b = socket.create_connection(listener.getsockname(), timeout=WAIT)
        a, _ = listener.accept()
    a.setblocking(False)
    b.setblocking(False)
    pipe = watch.pipe(stream)
    assert isinstance(pipe, IdlePipe)
    await loop.create_connection(lambda: pipe, sock=a)
    return pipe, b


def test_silent_pipes_are_closed_busy_and_lost_ones_are_not() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        watch = IdleWatch(0.4)  # swept every 0.1 s
        async with mux_pair(2, lambda st: setattr(st, "sink", QuietSink())) as (opener, _, _):
            silent, s_out = await _piped(watch, opener.open_stream())
            busy, b_out = await _piped(watch, opener.open_stream())
            lost, l_out = await _piped(watch, opener.open_stream())
            try:
                l_out.close()  # the peer goes: dropped from the watch, not counted as idle
                async with asyncio.timeout(WAIT):
                    while not lost.closed:
                        await asyncio.sleep(0.02)  # polling a condition, bounded
                    while not silent.closed:
                        await loop.sock_sendall(b_out, b"x")  # keeps the busy one alive
                        await asyncio.sleep(0.05)
                assert not busy.closed and watch.closed == 1
                assert await loop.sock_recv(s_out, 16) == b""  # the silent one's peer sees EOF
            finally:
                for s in (s_out, b_out):
                    s.close()
                watch.close()

    run(main)


def test_a_watched_pipe_stays_at_its_slots() -> None:
    """The idle stamp is the only per-pipe slot IdlePipe adds (the clock is the module's):
    FailoverPipe, the server's pipe for every open stream, is 112 B."""
    assert IdlePipe.__slots__ == ("last",)
    assert sys.getsizeof(FailoverPipe.__new__(FailoverPipe)) <= 112
