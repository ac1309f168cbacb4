"""ConnectionCap with real transports: global and per-source caps, closed ones freed."""

from __future__ import annotations

import asyncio
import resource
import socket

from burrow.config.limits import Limits
from burrow.net import conncap
from burrow.net.conncap import ConnectionCap


async def _pair() -> tuple[asyncio.Transport, socket.socket]:
    a, b = socket.socketpair()
    a.setblocking(False)
    t, _ = await asyncio.get_running_loop().connect_accepted_socket(asyncio.Protocol, a)
    return t, b


def test_caps_refuse_and_free() -> None:
    async def main() -> None:
        cap = ConnectionCap(Limits(max_connections=3, max_connections_per_source=2))
        pairs = [await _pair() for _ in range(4)]
        ts = [t for t, _ in pairs]
        assert cap.admit(ts[0], "a") is None
        assert cap.admit(ts[1], "a") is None
        assert "max_connections_per_source" in (cap.admit(ts[2], "a") or "")
        assert cap.admit(ts[2], "b") is None
        assert "max_connections" in (cap.admit(ts[3], "c") or "")
        ts[0].close()  # a closed connection frees its place (its source's right away)
        assert cap.admit(ts[3], "a") is None
        for t, peer in pairs:
            t.close()
            peer.close()
        await asyncio.sleep(0)

    asyncio.run(asyncio.wait_for(main(), 5))


def test_cap_fits_the_descriptor_limit() -> None:
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    cap = ConnectionCap(Limits(max_connections=0))
    assert cap.total == soft - conncap.FD_RESERVE
    assert cap.clamped_from == 0
    small = ConnectionCap(Limits(max_connections=10))
    assert small.total == 10
    assert small.clamped_from is None
