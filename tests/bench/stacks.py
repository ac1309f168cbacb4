"""Summarise py-spy raw stack files (``scale.py --profile DIR``): where each process spent time.

    python3 tests/bench/stacks.py DIR/10000-idle-worker1.txt [--top 15]

Prints the sample count, then the functions with the most samples on top of the stack (self)
and anywhere in it (inclusive).
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("files", type=Path, nargs="+")
    ap.add_argument("--top", type=int, default=15)
    a = ap.parse_args()
    for path in a.files:
        own: Counter[str] = Counter()
        incl: Counter[str] = Counter()
        total = 0
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            n = int(count)
            frames = stack.split(";")
            total += n
            own[frames[-1]] += n
            for f in set(frames):
                incl[f] += n
        print(f"== {path.name}: {total} samples")
        for label, c in (("self", own), ("incl", incl)):
            for f, n in c.most_common(a.top):
                print(f"  {label} {n:6d} {100 * n / max(total, 1):5.1f}%  {f[:140]}")


if __name__ == "__main__":
    main()
