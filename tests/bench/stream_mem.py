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
    a = ap.parse_args()
    m0, m1 = (int(x) for x in a.streams.split(","))
    raise_files(a.tunnels + m1 + 2000)
    tmp = Path(tempfile.mkdtemp(prefix="burrow-streammem-"))
    (tmp / "hook").mkdir()
    (tmp / "hook" / "sitecustomize.py").write_text(HOOK)
    env_path = os.environ["PYTHONPATH"]
    os.environ["PYTHONPATH"] = os.pathsep.join([str(tmp / "hook"), env_path])
    os.environ["BURROW_TM_DIR"] = str(tmp)
    os.environ["BURROW_TM_FRAMES"] = str(a.frames)
    procs = Procs()
    try:
        server, ports = start_server(procs, tmp, a.tunnels, 1, a)
        # The load tools run without tracemalloc (it would only slow them down).
        os.environ["PYTHONPATH"] = env_path
        del os.environ["BURROW_TM_DIR"]
        worker = max(server.pids())  # the supervisor is the lowest pid, its one worker next
        load = Loader(procs, tmp, ports, a.tunnels)
        b = load.ask(op="bind")
        print(f"bound {b['ok']} tunnels ({b['fail']} failed)", flush=True)
        vis = Loader(procs, tmp, ports, a.tunnels, offset=0)
        h = vis.ask(op="hold", m=m0, conc=64)
        s0, r0 = snapshot(worker, 0, tmp), rss_kb(worker)
        h1 = vis.ask(op="hold", m=m1, conc=64)
        s1, r1 = snapshot(worker, 1, tmp), rss_kb(worker)
        n = h1["held"] - h["held"]
        print(f"held {h['held']} -> {h1['held']} streams ({h1['fail']} failed)", flush=True)
        stats = s1.compare_to(s0, "traceback" if a.frames > 1 else "lineno")
        total = sum(st.size_diff for st in stats)
        print(f"worker RSS {(r1 - r0) * 1024 / n:.0f} B/stream, tracemalloc "
              f"{total / n:.0f} B/stream over {n} streams; top lines (B/stream, blocks/stream):",
              flush=True)  # fmt: skip
        for st in stats[: a.top]:
            where = " <- ".join(f"{f.filename.rsplit('/', 2)[-1]}:{f.lineno}" for f in st.traceback)
            print(f"{st.size_diff / n:8.1f} {st.count_diff / n:5.2f}  {where}")
    finally:
        procs.stop_all()


if __name__ == "__main__":
    main()
