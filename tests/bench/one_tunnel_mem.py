"""Server memory at one tunnel with 1,000 open connections (issue 15, against gost rc10).

    python3 tests/bench/one_tunnel_mem.py                 # --workers 2, 1,000 connections
    python3 tests/bench/one_tunnel_mem.py --workers 1 --held 1000

There is no gost binary on this machine (and no network to build one), so the gost side is the
figure issue 15 measured side by side on this VM: gost rc10 41.2 MB PSS / 53.0 MB RSS. This
starts a Burrow server (relay port + entry point, one ingress rule; ``scale.py``'s config), binds
one tunnel with ``scale_load.py`` (relay dialect), holds ``--held`` connections through it (half
entry point by Host, half relay CONNECT by tunnel ID, each answered once by the tunnel side and
then left open) and prints RSS / PSS (``/proc/<pid>/smaps_rollup``) of the supervisor and each
worker, idle and with the connections held, and the largest private mappings of one worker.

PSS splits a page shared with any other process, the load tool's and other programs' Python
included, so it moves with what else runs (about 3.5 MB here between a quiet machine and one
with other Python processes). It also prints the server's **unique** memory: the physical pages
mapped by any of its processes, each counted once (``/proc/<pid>/pagemap``, needs root). For a
one-process server such as gost that is its RSS (53.0 MB), so it is the like-for-like figure.
"""

from __future__ import annotations

import argparse
import struct
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from procs import Procs
from scale import Loader, raise_files, start_server

GOST = (41.2, 53.0)  # PSS, RSS MB: gost rc10, issue 15, same VM


def rollup(pid: int) -> tuple[float, float]:
    """(RSS, PSS) of one process in MB."""
    rss = pss = 0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Rss:"):
            rss = int(line.split()[1])
        elif line.startswith("Pss:"):
            pss = int(line.split()[1])
    return rss / 1024, pss / 1024


def biggest_private(pid: int, top: int = 6) -> list[tuple[int, str]]:
    """The mappings of ``pid`` with the most private (dirty + clean) KB."""
    out: list[tuple[int, str]] = []
    name, priv = "", 0
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split()
        if len(head) >= 5 and "-" in head[0] and ":" in head[3]:
            if priv:
                out.append((priv, name))
            name, priv = (head[5] if len(head) > 5 else "[anon]"), 0
        elif line.startswith(("Private_Dirty:", "Private_Clean:")):
            priv += int(head[1])
    if priv:
        out.append((priv, name))
    merged: dict[str, int] = {}
    for kb, n in out:
        merged[n] = merged.get(n, 0) + kb
    return sorted(((kb, n) for n, kb in merged.items()), reverse=True)[:top]


PFN_MASK = (1 << 55) - 1
PRESENT = 1 << 63


def unique_mb(pids: list[int]) -> float | None:
    """MB of distinct physical pages mapped by any of ``pids``; None without the PFNs (root)."""
    frames: set[int] = set()
    for pid in pids:
        with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/pagemap", "rb") as pagemap:
            for line in maps:
                fields = line.split()
                if len(fields) > 5 and fields[5] == "[vsyscall]":
                    continue  # not in the page tables: pagemap cannot be read there
                start, end = (int(x, 16) for x in fields[0].split("-"))
                pagemap.seek(start // 4096 * 8)
                for (entry,) in struct.iter_unpack("<Q", pagemap.read((end - start) // 4096 * 8)):
                    if entry & PRESENT:
                        frames.add(entry & PFN_MASK)
    if frames <= {0}:
        return None  # not root: the kernel hides the frame numbers
    return len(frames) * 4096 / 2**20


def show(tag: str, pids: list[int]) -> tuple[float, float]:
    rows = [rollup(p) for p in pids]
    rss, pss = sum(r for r, _ in rows), sum(p for _, p in rows)
    parts = ", ".join(
        f"{'supervisor' if k == 0 else f'worker{k}'} {r:.1f}/{p:.1f}"
        for k, (r, p) in enumerate(rows)
    )
    print(f"{tag}: RSS / PSS {rss:.1f} / {pss:.1f} MB ({parts}); gost rc10 (issue 15) "
          f"{GOST[1]:.1f} / {GOST[0]:.1f} MB", flush=True)  # fmt: skip
    unique = unique_mb(pids)
    if unique is not None:
        print(f"{tag}: unique {unique:.1f} MB (each page once; gost's one process: its RSS, "
              f"{GOST[1]:.1f} MB)", flush=True)  # fmt: skip
    return rss, pss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--held", type=int, default=1000)
    ap.add_argument("--log-level", default="info")
    ap.add_argument("--burrow-args", default="")
    a = ap.parse_args()
    raise_files(a.held * 2 + 2000)
    tmp = Path(tempfile.mkdtemp(prefix="burrow-onetunnel-"))
    procs = Procs()
    try:
        server, ports = start_server(procs, tmp, 1, a.workers, a)
        pids = sorted(server.pids())
        time.sleep(2.0)  # settling (not synchronisation): start-up garbage goes
        show("idle", pids)
        load = Loader(procs, tmp, ports, 1)
        b = load.ask(op="bind")
        assert b["ok"] == 1, b
        vis = Loader(procs, tmp, ports, 1, offset=0)
        h = vis.ask(op="hold", m=a.held, conc=32)
        time.sleep(1.0)  # settling before reading memory
        print(f"held {h['held']} connections ({h['fail']} failed) on one tunnel", flush=True)
        show(f"{h['held']} open connections", pids)
        for kb, name in biggest_private(pids[-1]):
            print(f"  worker{len(pids) - 1} private {kb / 1024:6.1f} MB  {name}")
    finally:
        procs.stop_all()


if __name__ == "__main__":
    main()
