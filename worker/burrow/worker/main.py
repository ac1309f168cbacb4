"""Worker process entry: ``python -m burrow.worker.main --spec-fd N``.

Reads the msgpack WorkerSpec from the spec pipe, sets up logging, installs uvloop and runs the
App. A failure before serving exits WORKER_BOOT so the supervisor halts instead of respawning.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys

import uvloop

from burrow.common.exitcodes import ExitCode
from burrow.common.logfmt import event, setup_logging
from burrow.common.rlimit import raise_nofile
from burrow.ipc.spec import decode_spec

log = logging.getLogger("burrow.worker")
USAGE = "usage: burrow-worker --spec-fd N\n"


def parse_spec_fd(argv: list[str]) -> int:
    """The N of ``--spec-fd N`` (or ``--spec-fd=N``); SystemExit(2) with usage otherwise."""
    # Not argparse: the supervisor is the only caller and argparse costs every worker ~0.4 MB.
    if len(argv) == 2 and argv[0] == "--spec-fd":
        text = argv[1]
    elif len(argv) == 1 and argv[0].startswith("--spec-fd="):
        text = argv[0].removeprefix("--spec-fd=")
    else:
        text = ""
    try:
        return int(text)
    except ValueError:
        sys.stderr.write(f"{USAGE}burrow-worker: expected --spec-fd N, got {argv!r}\n")
        raise SystemExit(2) from None


def name_process(name: str) -> None:
    """Set the name ``ps -o comm``, ``top`` and ``pgrep -x`` show (15 bytes at most).

    A worker forked from the zygote has the supervisor's command line; this tells them apart.
    """
    try:
        with open("/proc/self/comm", "w", encoding="ascii") as fh:
            fh.write(name[:15])
    except OSError:
        pass  # no procfs: only cosmetic


def main(argv: list[str] | None = None) -> int:
    """Run one worker; returns its exit code."""
    spec_fd = parse_spec_fd(sys.argv[1:] if argv is None else argv)
    name_process("burrow-worker")
    try:
        with os.fdopen(spec_fd, "rb") as fh:
            spec = decode_spec(fh.read())
    except Exception as exc:  # noqa: BLE001 - any failure here is a boot failure
        print(f"burrow worker: cannot read its spec: {exc}", file=sys.stderr)
        return ExitCode.WORKER_BOOT
    setup_logging(spec.log_level, spec.log_format, process=f"worker-{spec.index}")
    raise_nofile()  # inherited from the supervisor already; again in case it was started alone
    from burrow.worker.app import App, BootError

    try:
        app = App(spec)
    except BootError as exc:
        event(log, logging.ERROR, "worker.boot_failed", index=spec.index, error=str(exc))
        return ExitCode.WORKER_BOOT
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(app.run())
    except BootError as exc:
        event(log, logging.ERROR, "worker.boot_failed", index=spec.index, error=str(exc))
        return ExitCode.WORKER_BOOT
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
