"""A StreamSink for tests: keeps what a smux stream delivers, with bounded waits."""

from __future__ import annotations

import asyncio

from burrow.net.mux_stream import MuxStream

WAIT = 10.0


class Collector:
    """A StreamSink that keeps what it gets and reports consumption (so v2 windows keep opening)."""

    def __init__(self) -> None:
        self.stream: MuxStream | None = None
        self.buf = bytearray()
        self.ended = asyncio.Event()
        self.changed = asyncio.Event()

    def stream_data(self, data: bytes | memoryview) -> None:
        self.buf += data
        if self.stream is not None:
            self.stream.consumed(len(data))
        self.changed.set()

    def stream_ended(self) -> None:
        self.ended.set()
        self.changed.set()

    def stream_writable(self) -> None:
        pass

    def pause_source(self) -> None:
        pass

    def resume_source(self) -> None:
        pass

    async def wait_len(self, n: int) -> bytes:
        async with asyncio.timeout(WAIT):
            while len(self.buf) < n:
                assert not self.ended.is_set(), f"stream ended after {len(self.buf)} bytes"
                self.changed.clear()
                await self.changed.wait()
        return bytes(self.buf)

    async def wait_ended(self) -> None:
        async with asyncio.timeout(WAIT):
            await self.ended.wait()
