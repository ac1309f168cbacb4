"""A protocol-free worker for supervisor tests: ``python -m tests.supervisor.tiny_worker --spec-fd N``.

Each accepted TCP connection gets one line ``worker=<index> gen=<generation> pid=<pid> cid=<own
connector id or -> view=<connector ids seen in the registry>`` and is closed. A client that first
sends ``wait`` gets the line, then ``draining`` once the worker starts draining, and ``bye`` after
it sends another line (an in-flight connection the drain must let finish).

Switches (environment, inherited through the supervisor):
  TINY_BOOT_LOG=path     append "<index> <pid> <generation>" at boot
  TINY_BOOT_FAIL=1       exit WORKER_BOOT before Ready
  TINY_CRASH_AFTER=N     exit 1 after answering N connections
  TINY_HANG_ONCE=path    the first worker to create ``path`` writes its pid there, sends Ready,
                         then blocks its event loop (no more heartbeats)
  TINY_CONNECTOR=1       announce one connector (ConnectorUp) before Ready
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import os
import signal
import socket
import sys
import time
import uuid
from typing import Any

import uvloop

from burrow.common.exitcodes import ExitCode
from burrow.ipc.messages import ConnectorInfo
from burrow.ipc.spec import WorkerSpec, decode_spec
from burrow.worker.bus import BusClient
from burrow.worker.lifeline import watch_lifeline

TUNNEL_ID = "4d21094e-b74c-4916-86c1-d9fa36ea677b"
MAX_LINE = 1024
DRAIN_TIMEOUT = 30.0
LINE_TIMEOUT = 30.0


async def _maybe_await(value: Any) -> None:
    if inspect.isawaitable(value):
        await value


class TinyWorker:
    """Accept loops plus the bus; see the module docstring for behaviour."""

    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        self.answered = 0
        self.connector_id = "-"
        self.inflight: set[asyncio.Task[None]] = set()
        self.waiting: set[asyncio.StreamWriter] = set()
        self.stop = asyncio.Event()
        self.bus: BusClient | None = None

    def line(self) -> bytes:
        """The answer line for one connection."""
        view = ",".join(sorted(c.connector_id for c in self.bus.view.all())) if self.bus else ""
        spec = self.spec
        return (
            f"worker={spec.index} gen={spec.generation} pid={os.getpid()} "
            f"cid={self.connector_id} view={view or '-'}\n"
        ).encode()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Answer one connection."""
        task = asyncio.current_task()
        assert task is not None
        self.inflight.add(task)
        try:
            async with asyncio.timeout(LINE_TIMEOUT):
                first = await reader.readline()
                writer.write(self.line())
                if first.strip() == b"wait":
                    self.waiting.add(writer)
                    if self.stop.is_set():
                        writer.write(b"draining\n")
                    await reader.readline()
                    writer.write(b"bye\n")
                await writer.drain()
        except (OSError, TimeoutError):
            pass
        finally:
            self.waiting.discard(writer)
            writer.close()
            self.inflight.discard(task)
            self.answered += 1
            crash_after = int(os.environ.get("TINY_CRASH_AFTER", "0"))
            if crash_after and self.answered >= crash_after:
                os._exit(1)

    def on_term(self) -> None:
        """Stop accepting; tell waiting clients we are draining."""
        for writer in self.waiting:
            writer.write(b"draining\n")
        self.stop.set()

    async def run(self) -> int:
        """Boot, serve until SIGTERM or lifeline EOF, drain."""
        loop = asyncio.get_running_loop()
        spec = self.spec
        log = os.environ.get("TINY_BOOT_LOG")
        if log:
            with open(log, "a") as fh:  # noqa: ASYNC230 - one line at boot
                fh.write(f"{spec.index} {os.getpid()} {spec.generation}\n")
        if os.environ.get("TINY_BOOT_FAIL"):
            return ExitCode.WORKER_BOOT
        loop.add_signal_handler(signal.SIGTERM, self.on_term)
        watch_lifeline(loop, spec.lifeline_fd, lambda: os._exit(0))
        servers = []
        for lst in spec.listeners:
            sock = socket.socket(fileno=lst.fd)
            if lst.network == "tcp":
                servers.append(await asyncio.start_server(self.handle, sock=sock))
        self.bus = BusClient(spec)
        await self.bus.start(timeout=5.0)
        if os.environ.get("TINY_CONNECTOR"):
            self.connector_id = str(uuid.uuid4())
            info = ConnectorInfo(
                tunnel_id=TUNNEL_ID,
                connector_id=self.connector_id,
                worker=spec.index,
                network="tcp",
                weight=0,
                dialect="relay",
                peer="127.0.0.1:1",
                since=time.time(),
            )
            await _maybe_await(self.bus.connector_up(info))
        hang = os.environ.get("TINY_HANG_ONCE")
        if hang and self._claim(hang):
            await _maybe_await(self.bus.ready())
            # Let Ready leave, then block the loop: heartbeats stop, as in a wedged worker.
            loop.call_later(0.2, time.sleep, 3600)
        else:
            await _maybe_await(self.bus.ready())
        await self.stop.wait()
        for server in servers:
            server.close()
        if self.inflight:
            await asyncio.wait(set(self.inflight), timeout=DRAIN_TIMEOUT)
        await self.bus.close()
        return ExitCode.OK

    @staticmethod
    def _claim(path: str) -> bool:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            return False
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        return True


def main(argv: list[str] | None = None) -> int:
    """Read the spec from --spec-fd and run."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--spec-fd", type=int, required=True)
    args = parser.parse_args(argv)
    try:
        with os.fdopen(args.spec_fd, "rb") as fh:
            spec = decode_spec(fh.read())
    except Exception as exc:  # noqa: BLE001
        print(f"tiny worker: bad spec: {exc}", file=sys.stderr)
        return ExitCode.WORKER_BOOT
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(TinyWorker(spec).run())


if __name__ == "__main__":
    sys.exit(main())
