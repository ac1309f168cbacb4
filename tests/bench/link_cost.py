"""CPU per MB of one relay transport link, both ends in one process: `python3 tests/bench/link_cost.py`.

uvloop, loopback TCP: Burrow's dialer (burrow.net.layered.dial) sends smux-like writelines
(an 8-byte header before every 32 KiB, 256 KiB per call, under write flow control) to a
LayeredAccept server whose app counts bytes. Prints CPU milliseconds (user + system, this
process) per MB and the wall MB/s, per transport, repeated; CPU time is what to compare on a
shared machine (the wall rate depends on what else runs). To compare two checkouts, set
PYTHONPATH to the other one's shared:worker:supervisor. Never run by CI.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import struct
import tempfile
import time
from pathlib import Path

import trustme
import uvloop

from burrow.config.plan_transport import TransportPlan
from burrow.net.layered import LayeredAccept, dial
from burrow.net.tls import server_context

NAME = "link.bench"
FRAME = 32768


class Sink(asyncio.Protocol):
    """Counts; ``done`` once ``want`` bytes arrived."""

    def __init__(self, want: int) -> None:
        self.n = 0
        self.want = want
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self.n += len(data)
        if self.n >= self.want and not self.done.done():
            self.done.set_result(None)


class Source(asyncio.Protocol):
    """The sender's flow control as an event."""

    def __init__(self) -> None:
        self.writable = asyncio.Event()
        self.writable.set()

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()


async def one(server: TransportPlan, client: TransportPlan, megabytes: int) -> tuple[float, float]:
    """(CPU ms per MB, wall MB/s) of ``megabytes`` over one link."""
    loop = asyncio.get_running_loop()
    want = megabytes << 20
    sinks: list[Sink] = []

    def make() -> Sink:
        sinks.append(Sink(want))
        return sinks[-1]

    if server.kind == "tcp":
        srv = await loop.create_server(make, "127.0.0.1", 0)
    else:
        ctx = server_context(server) if server.uses_tls else None
        srv = await loop.create_server(
            lambda: LayeredAccept(server, ctx, make, print), "127.0.0.1", 0
        )
    port = srv.sockets[0].getsockname()[1]
    t, src = await asyncio.wait_for(dial(client, "127.0.0.1", port, Source), 10)
    t.set_write_buffer_limits(high=256 * 1024, low=64 * 1024)
    view = memoryview(os.urandom(256 * 1024))
    header = struct.pack("<BBHI", 1, 2, FRAME, 3)
    bufs: list[bytes | memoryview] = []
    for off in range(0, len(view), FRAME):
        bufs += [header, view[off : off + FRAME]]
    per_call = sum(map(len, bufs))
    before, began = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    sent = 0
    while sent < want:
        await asyncio.wait_for(src.writable.wait(), 30)
        t.writelines(bufs)
        sent += per_call
    while not sinks:
        await asyncio.sleep(0.001)
    await asyncio.wait_for(sinks[0].done, 60)
    after, ended = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    t.close()
    srv.close()
    return cpu * 1e3 / megabytes, megabytes / (ended - began)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--transports", default="tcp,tls,ws,wss")
    ap.add_argument("--mb", type=int, default=1024, help="MB per run")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="burrow-link-cost-"))
    ca = trustme.CA()
    cert = ca.issue_cert(NAME)
    cert.cert_chain_pems[0].write_to_path(str(tmp / "s.pem"))
    cert.private_key_pem.write_to_path(str(tmp / "s.key"))
    ca.cert_pem.write_to_path(str(tmp / "ca.pem"))
    print(f"load average {os.getloadavg()[0]:.1f}; {args.mb} MB per run")
    print("| transport | CPU ms/MB (both ends), each round | wall MB/s |")
    print("|---|---|---|")
    for kind in args.transports.split(","):
        server = TransportPlan(kind=kind, cert_file=str(tmp / "s.pem"), key_file=str(tmp / "s.key"))  # type: ignore[arg-type]
        client = TransportPlan(
            kind=kind, ca_file=str(tmp / "ca.pem"), secure=True, server_name=NAME
        )  # type: ignore[arg-type]
        got = [uvloop.run(one(server, client, args.mb)) for _ in range(args.rounds)]
        cpu = ", ".join(f"{c:.2f}" for c, _ in got)
        wall = ", ".join(f"{w:.0f}" for _, w in got)
        print(f"| {kind} | {cpu} | {wall} |")


if __name__ == "__main__":
    main()
