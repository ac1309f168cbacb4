"""Where the server's memory per open stream goes: tracemalloc in a one-worker server.

    python3 tests/bench/stream_mem.py                  # 200 tunnels, 2,000 -> 6,000 streams
    python3 tests/bench/stream_mem.py --streams 2000,12000 --top 30

Starts a Burrow server (``--workers 1``, so no handoff; the relay port and the entry point of
``scale.py``'s config) with tracemalloc on in every process (a ``sitecustomize`` in a temporary
directory put first on PYTHONPATH: on SIGUSR2 a process collects garbage and dumps a snapshot),
binds the tunnels with ``scale_load.py``, opens the first number of streams (half entry point,
half relay CONNECT, all held open), snapshots the worker, opens the rest, snapshots again and
prints the difference per stream grouped by allocating line, with the RSS difference per stream
(RSS also counts what tracemalloc cannot see: uvloop's and libuv's own C allocations).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from procs import Procs
from scale import Loader, raise_files, start_server

HOOK = """
import os, signal
if os.environ.get("BURROW_TM_DIR"):
    import tracemalloc
    tracemalloc.start(int(os.environ.get("BURROW_TM_FRAMES", "1")))
    def _dump(*_):
        import gc
        gc.collect()
        d, n = os.environ["BURROW_TM_DIR"], getattr(_dump, "n", 0)
        _dump.n = n + 1
        tracemalloc.take_snapshot().dump(f"{d}/{os.getpid()}-{n}.snap")
        os.rename(f"{d}/{os.getpid()}-{n}.snap", f"{d}/{os.getpid()}-{n}.done")
    signal.signal(signal.SIGUSR2, _dump)
"""


def snapshot(pid: int, n: int, out: Path, timeout: float = 120.0) -> tracemalloc.Snapshot:
    """Ask ``pid`` for its ``n``-th snapshot and load it."""
    os.kill(pid, signal.SIGUSR2)
    path = out / f"{pid}-{n}.done"
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"no tracemalloc snapshot from {pid} in {timeout} s")
        time.sleep(0.1)  # polling a file the worker renames into place when complete
    return tracemalloc.Snapshot.load(str(path))


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--tunnels", type=int, default=200)
    ap.add_argument("--streams", default="2000,6000", help="before,after (held streams)")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--frames", type=int, default=1, help="traceback depth per allocation")
    ap.add_argument("--log-level", default="warning")
    ap.add_argument("--burrow-args", default="")
    ap.add_argument("--no-trace", action="store_true", help="RSS only, tracemalloc off")
    ap.add_argument("--workers", type=int, default=1, help="more than 1: handoffs too")
    a = ap.parse_args()
    m0, m1 = (int(x) for x in a.streams.split(","))
    raise_files(a.tunnels + m1 + 2000)
    tmp = Path(tempfile.mkdtemp(prefix="burrow-streammem-"))
    (tmp / "hook").mkdir()
    (tmp / "hook" / "sitecustomize.py").write_text(HOOK)
    env_path = os.environ["PYTHONPATH"]
    os.environ["PYTHONPATH"] = os.pathsep.join([str(tmp / "hook"), env_path])
    if not a.no_trace:
        os.environ["BURROW_TM_DIR"] = str(tmp)
    os.environ["BURROW_TM_FRAMES"] = str(a.frames)
    procs = Procs()
    try:
        server, ports = start_server(procs, tmp, a.tunnels, a.workers, a)
        # The load tools run without tracemalloc (it would only slow them down).
        os.environ["PYTHONPATH"] = env_path
        os.environ.pop("BURROW_TM_DIR", None)
        workers = sorted(server.pids())[1:]  # the supervisor is the lowest pid
        load = Loader(procs, tmp, ports, a.tunnels)
        b = load.ask(op="bind")
        print(f"bound {b['ok']} tunnels ({b['fail']} failed)", flush=True)
        vis = Loader(procs, tmp, ports, a.tunnels, offset=0)
        h = vis.ask(op="hold", m=m0, conc=64)
        s0 = [] if a.no_trace else [snapshot(w, 0, tmp) for w in workers]
        r0 = sum(rss_kb(w) for w in workers)
        h1 = vis.ask(op="hold", m=m1, conc=64)
        s1 = [] if a.no_trace else [snapshot(w, 1, tmp) for w in workers]
        r1 = sum(rss_kb(w) for w in workers)
        n = h1["held"] - h["held"]
        print(f"held {h['held']} -> {h1['held']} streams ({h1['fail']} failed)", flush=True)
        if not s0:
            print(f"workers' RSS {(r1 - r0) * 1024 / n:.0f} B/stream over {n} streams "
                  f"({a.workers} workers)", flush=True)  # fmt: skip
            return
        by_line: dict[str, list[float]] = {}
        for before, after in zip(s0, s1, strict=True):
            for st in after.compare_to(before, "traceback" if a.frames > 1 else "lineno"):
                key = " <- ".join(
                    f"{f.filename.rsplit('/', 2)[-1]}:{f.lineno}" for f in st.traceback
                )
                acc = by_line.setdefault(key, [0.0, 0.0])
                acc[0] += st.size_diff
                acc[1] += st.count_diff
        total = sum(v[0] for v in by_line.values())
        print(f"tracemalloc {total / n:.0f} B/stream over {n} streams ({a.workers} workers; "
              "RSS with tracemalloc on is not meaningful); top lines (B/stream, blocks/stream):",
              flush=True)  # fmt: skip
        for key, (size, count) in sorted(by_line.items(), key=lambda kv: -kv[1][0])[: a.top]:
            print(f"{size / n:8.1f} {count / n:5.2f}  {key}")
    finally:
        procs.stop_all()


if __name__ == "__main__":
    main()
