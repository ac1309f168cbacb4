"""CPU time per operation in each Burrow process: the profile figure behind BENCHMARKS.md.

    python3 tests/bench/cpu_cost.py [--n 3000] [--burrow-args "--busy-poll-us 0"]

Runs the benchmark topology (topology.py) with one worker each, performs ``n`` operations of
each kind one after the other, and prints, per operation, the user and system CPU microseconds
spent by the server, the tunnel client and the visitor (all their processes, from
/proc/<pid>/stat), with the median latency through Burrow next to the same operation direct to
the backend, measured in the same run. Operations:
- ping-pong: 1 byte each way on an established connection over the full path;
- new conn: a new connection through the visitor, 1 byte echoed, closed;
- HTTP: a request on a new connection through the entry point.
To compare code versions, run the same script with PYTHONPATH pointing at another checkout's
shared:worker:supervisor directories (the Burrow processes inherit it).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).parent))

import load
from procs import Proc, Procs
from topology import burrow, start_backends

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(proc: Proc) -> tuple[float, float]:
    """(user, system) CPU seconds of every process in ``proc``'s group."""
    user = system = 0.0
    for pid in proc.pids():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        user += int(fields[11]) / TICK
        system += int(fields[12]) / TICK
    return user, system


async def new_conn_echo(port: int, n: int) -> list[float]:
    """Latencies (s) of ``n`` sequential connect / 1 byte echoed / close."""
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        async with asyncio.timeout(load.REQUEST_TIMEOUT):
            conn = await load.echo_conn(port)
            await conn.round_trip()
        assert conn.transport is not None
        conn.transport.close()
        out.append(time.perf_counter() - t0)
    return out


def main() -> int:
    """Measure and print the table."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--n", type=int, default=3000, help="operations of each kind")
    ap.add_argument("--burrow-args", default="", help="extra arguments for each Burrow process")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="burrow-cpu-"))
    procs = Procs()
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    rows = []
    try:
        back = start_backends(procs, tmp)
        with burrow(procs, tmp, 1, back, tuple(shlex.split(args.burrow_args))) as bw:
            # (name, the operation through Burrow, the same operation direct to the backend)
            Op = Callable[[], Awaitable[list[float]]]
            ops: list[tuple[str, Op, Op]] = [
                (
                    "ping-pong, full path",
                    lambda: load.ping_pong(bw.visitor_echo, args.n),
                    lambda: load.ping_pong(back.echo, args.n),
                ),
                (
                    "new conn + 1 byte, visitor",
                    lambda: new_conn_echo(bw.visitor_echo, args.n),
                    lambda: new_conn_echo(back.echo, args.n),
                ),
                (
                    "HTTP new conn, entry point",
                    lambda: load.sequential_latency(bw.entry, args.n),
                    lambda: load.sequential_latency(back.http, args.n),
                ),
            ]
            who = {"server": bw.server, "client": bw.client, "visitor": bw.visitor}
            for name, op, direct_op in ops:
                direct = statistics.median(loop.run_until_complete(direct_op()))
                before = {k: cpu_seconds(p) for k, p in who.items()}
                lat = loop.run_until_complete(op())
                after = {k: cpu_seconds(p) for k, p in who.items()}
                cells = []
                for k in who:
                    u = (after[k][0] - before[k][0]) / len(lat) * 1e6
                    s = (after[k][1] - before[k][1]) / len(lat) * 1e6
                    cells.append(f"{u:.0f} + {s:.0f}")
                through = statistics.median(lat)
                rows.append(
                    f"| {name} | {direct * 1e6:.0f} us | {through * 1e6:.0f} us "
                    f"({(through - direct) * 1e6:+.0f} us) | " + " | ".join(cells) + " |"
                )
    finally:
        loop.close()
        procs.stop_all()
    print(
        f"Command: `python3 tests/bench/cpu_cost.py {' '.join(sys.argv[1:])}`"
        + (f" (PYTHONPATH={os.environ['PYTHONPATH']})" if os.environ.get("PYTHONPATH") else "")
    )
    print()
    print(
        "| operation | median latency direct | through Burrow (added) "
        "| server CPU us/op (user + sys) | client | visitor |"
    )
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
