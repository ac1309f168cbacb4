"""Run a Supervisor over the tiny worker: ``python -m tests.supervisor.driver --listen ...``.

``--listen service/role/network/host:port`` (repeatable). SIGHUP reloads with the same listeners
and the config bytes read from ``--config-file`` (the tiny worker ignores them).
"""

from __future__ import annotations

import argparse
import sys

from burrow.common.logfmt import setup_logging
from burrow.supervisor.arbiter import Supervisor
from burrow.supervisor.listeners import BindRequest
from burrow.supervisor.reload import Reloaded


def parse_listen(text: str) -> BindRequest:
    """``svc/role/net/host:port`` -> BindRequest."""
    service, role, network, address = text.split("/", 3)
    host, _, port = address.rpartition(":")
    return BindRequest(service, role, network, host, int(port))


def main() -> int:
    """Parse flags, run the supervisor, return its exit code."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--listen", action="append", default=[])
    parser.add_argument("--heartbeat-interval", type=float, default=1.0)
    parser.add_argument("--heartbeat-timeout", type=float, default=None)
    parser.add_argument("--grace", type=float, default=10.0)
    parser.add_argument("--runtime-dir", default=None)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args()
    setup_logging(args.log_level, "text", process="main")
    binds = [parse_listen(x) for x in args.listen]
    supervisor = Supervisor(
        binds,
        b"tiny",
        workers=args.workers,
        worker_module="tests.supervisor.tiny_worker",
        source="driver",
        runtime_dir=args.runtime_dir,
        log_level=args.log_level,
        heartbeat_interval=args.heartbeat_interval,
        heartbeat_timeout=args.heartbeat_timeout,
        grace=args.grace,
        reload=lambda: Reloaded(b"tiny-reloaded", binds),
    )
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main())
