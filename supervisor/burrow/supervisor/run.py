"""``burrow`` run mode: turn a loaded config into bind requests and run the Supervisor."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import msgspec

from burrow.common.exitcodes import ExitCode
from burrow.common.logfmt import event, setup_logging
from burrow.common.rlimit import raise_nofile

from . import systemd
from .arbiter import Reloaded, Supervisor
from .listeners import BindRequest

if TYPE_CHECKING:
    from burrow.config.plan import ListenSpec, ServicePlan
    from burrow.config.schema import Config

log = logging.getLogger("burrow.supervisor")


def bind_requests(specs: Sequence[ListenSpec]) -> list[BindRequest]:
    """The supervisor's bind list from the plan's listen specs (same order)."""
    return [
        BindRequest(s.service, s.role, s.network, s.endpoint.host, s.endpoint.port) for s in specs
    ]


def worker_count(flag: int | None, config: Config) -> int:
    """--workers, else ``[burrow] workers``, else one per CPU."""
    if flag is not None:
        return flag
    if config.burrow.workers is not None:
        return config.burrow.workers
    return os.cpu_count() or 1


class _Reloader:
    """Re-reads the config file named by ``source`` on SIGHUP; remembers the last good config."""

    def __init__(self, source: str | None, config: Config) -> None:
        self.source = source
        self.config = config

    def __call__(self) -> Reloaded | None:
        """The new worker config and listeners, or None (logged) when the file is unusable."""
        reloaded = _reload(self.source, self.config)
        if reloaded is not None:
            self.config = reloaded[0]
            return reloaded[1]
        return None


def _reload(source: str | None, current: Config) -> tuple[Config, Reloaded] | None:
    from burrow.config.errors import ConfigError
    from burrow.config.load import load_file
    from burrow.config.plan import build_plans, listen_specs

    try:
        if source and source != "cli" and os.path.isfile(source):
            config = load_file(source)
        else:
            # Command-line services have no file to re-read: roll workers on the same config.
            config = current
        plans = build_plans(config, source=source)
    except (ConfigError, OSError) as exc:
        event(log, logging.ERROR, "reload.config_error", source=source, error=str(exc))
        return None
    return config, Reloaded(msgspec.msgpack.encode(config), bind_requests(listen_specs(plans)))


def run(
    config: Config, plans: Sequence[ServicePlan], *, workers: int | None, source: str | None
) -> int:
    """Run every service of ``config`` in a worker pool until signalled; returns the exit code."""
    from burrow.config.plan import listen_specs

    settings = config.burrow
    setup_logging(settings.log_level, settings.log_format, process="main")
    before, after = raise_nofile()
    if after != before:
        event(log, logging.DEBUG, "supervisor.nofile_raised", soft_before=before, soft=after)
    count = worker_count(workers, config)
    if count < 1:
        event(
            log,
            logging.ERROR,
            "supervisor.bad_workers",
            workers=count,
            fix="use --workers 1 or more",
        )
        return ExitCode.USAGE
    supervisor = Supervisor(
        bind_requests(listen_specs(plans)),
        msgspec.msgpack.encode(config),
        workers=count,
        source=source,
        runtime_dir=settings.runtime_dir,
        log_level=settings.log_level,
        log_format=settings.log_format,
        reload=_Reloader(source, config),
        live_reload=True,
        inherited_fds=systemd.listen_fds(),
    )
    return supervisor.run()
