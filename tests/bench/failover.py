"""Failover figures for BENCHMARKS.md: failed requests and worst latency per case and dialect.

    python3 tests/bench/failover.py [--workers 1 2] [--before 1.5] [--after 3.5]

Runs the scenario of tests/e2e/failover_scenario.py (two tunnel clients on one tunnel, a 50 req/s
loop through the entry point and one through a visitor, client-a signalled after ``--before``
seconds, load for ``--after`` more) and prints a Markdown table. About 7 s per row.
"sigterm" signals the supervisor only; "sigterm-group" the whole process group, as systemd does.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for e2e.*
for root in ("shared", "worker", "supervisor"):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / root))

from e2e.failover_scenario import CASES, HEADER, run_case
from e2e.harness import Launcher


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="server workers")
    ap.add_argument("--before", type=float, default=1.5, help="seconds of load before the signal")
    ap.add_argument("--after", type=float, default=3.5, help="seconds of load after it")
    args = ap.parse_args()
    print(HEADER, flush=True)
    for workers in args.workers:
        for dialect in ("relay", "tunnel"):
            for case in (*CASES, "sigterm-group"):
                with tempfile.TemporaryDirectory() as tmp:
                    launcher = Launcher(Path(tmp))
                    try:
                        r = run_case(
                            launcher,
                            dialect,
                            case,
                            workers=workers,
                            before=args.before,
                            after=args.after,
                        )
                    finally:
                        launcher.stop_all()
                print(r.row(), flush=True)


if __name__ == "__main__":
    main()
