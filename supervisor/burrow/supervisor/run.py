"""``burrow`` run mode: turn a loaded config into bind requests and run the Supervisor."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from burrow.common.exitcodes import ExitCode
from burrow.common.logfmt import ROOT, event, setup_logging
from burrow.common.rlimit import raise_nofile

from . import systemd
from .cpus import usable_cpus
from .listeners import BindRequest
from .oneproc import one_process, run_one_process
from .reload import Reloaded, ReloadRefused

if TYPE_CHECKING:
    from burrow.admin.book import StatsBook
    from burrow.config.admin import AdminPlan
    from burrow.config.cluster import ClusterPlan
    from burrow.config.plan_types import ListenSpec, ServicePlan
    from burrow.config.schema import Config

    from .admin_http import AdminServer
    from .zygote import Zygote

log = logging.getLogger("burrow.supervisor")

KILL_MARGIN = 2.0


def bind_requests(specs: Sequence[ListenSpec]) -> list[BindRequest]:
    """The supervisor's bind list from the plan's listen specs (same order)."""
    return [
        BindRequest(s.service, s.role, s.network, s.endpoint.host, s.endpoint.port) for s in specs
    ]


def redirect_stderr(output: str) -> None:
    """``log_output`` (gost's ``log.output``): point fd 2 elsewhere; the workers inherit it."""
    if output == "stdout":
        os.dup2(1, 2)
        return
    path = os.devnull if output == "none" else output
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.dup2(fd, 2)
    finally:
        os.close(fd)


def worker_count(flag: int | None, config: Config) -> int:
    """--workers, else ``[burrow] workers``, else one per CPU this process may use."""
    if flag is not None:
        return flag
    if config.burrow.workers is not None:
        return config.burrow.workers
    return usable_cpus()


def _planned(config: Config, source: str | None) -> Reloaded:
    """Plan ``config`` (reading ingress rule files) into the workers' PlanSet bytes and binds."""
    from burrow.config.plan import build_plans, listen_specs
    from burrow.config.planset import encode_planset, make_planset

    from .relay_cert import with_relay_certs
    from .tls_check import check_entry_certs

    plans = with_relay_certs(build_plans(config, source=source))
    check_entry_certs(plans)
    return Reloaded(
        encode_planset(make_planset(config, plans, source)), bind_requests(listen_specs(plans))
    )


def _refused(exc: Exception, source: str | None) -> ReloadRefused:
    from burrow.config.errors import ConfigError

    fields = {"file": source or "", "error": str(exc), "action": "keeping the running config"}
    if isinstance(exc, ConfigError):
        fields["error"] = exc.problem
        fields["key"] = exc.key or ""
        fields["fix"] = exc.fix or ""
        fields["file"] = exc.file or fields["file"]
    else:
        fields["fix"] = "restore the file (or fix its permissions) and send SIGHUP again"
    return ReloadRefused("reload.failed", fields)


class _Reloader:
    """SIGHUP: re-read the config file named by ``source`` and plan it; keeps the last good one."""

    def __init__(self, source: str | None, config: Config | None) -> None:
        # config None: the one-process image (oneproc.serve), which has no ingress rules files.
        self.source = source
        self.config = config
        self._rules_error: dict[str, str] | None = None
        # Told every newly planned config (the admin endpoint's readiness follows its clients).
        self.on_planned: Callable[[Reloaded], None] | None = None

    def __call__(self) -> Reloaded | ReloadRefused:
        """The new plans and listeners, or why not (the old config keeps serving)."""
        from burrow.config.errors import ConfigError
        from burrow.config.load import load_file

        if not self.source or self.source == "cli":
            return ReloadRefused(
                "reload.nothing",
                {"reason": "no config file (services from -L/-F)", "action": "nothing to reload"},
            )
        try:
            config = load_file(self.source)
            reloaded = _planned(config, self.source)
        except (ConfigError, OSError) as exc:
            return _refused(exc, self.source)
        if self.config is not None and config.burrow.cluster != self.config.burrow.cluster:
            # The membership (Redis client, node name, advertise) is the supervisor's and is
            # set up once; only a restart re-joins with new settings.
            event(log, logging.WARNING, "reload.cluster_unchanged", file=self.source,
                  key="burrow.cluster", fix="restart the node to apply [burrow.cluster] changes")  # fmt: skip
        self.config = config
        if self.on_planned is not None:
            self.on_planned(reloaded)
        return reloaded

    def rules(self) -> Reloaded | ReloadRefused | None:
        """``ingresses[].reload``: re-plan the held config, which re-reads the rules files."""
        from burrow.config.errors import ConfigError

        if self.config is None:
            return None
        try:
            planned = _planned(self.config, self.source)
        except (ConfigError, OSError) as exc:
            fields = _refused(exc, self.source).fields
            if fields == self._rules_error:
                return None  # said once already; the held rules keep serving
            self._rules_error = fields
            return ReloadRefused("ingress.reload_failed", fields)
        self._rules_error = None
        return planned


def rules_period(config: Config) -> float | None:
    """The shortest ``reload`` period of an ingress with a rules file, or None."""
    periods = [i.reload for i in config.ingresses if i.file is not None and i.reload]
    return min(periods) if periods else None


def _admin(
    admin: AdminPlan, plans: Sequence[ServicePlan], reloader: _Reloader
) -> tuple[StatsBook, AdminServer] | int:
    """Bind the admin endpoint (before any worker starts); an exit code when it cannot."""
    import msgspec

    from burrow.admin.api import redact
    from burrow.admin.book import StatsBook
    from burrow.admin.events import RingHandler
    from burrow.config.plan_types import TunnelClientPlan

    from .admin_http import AdminServer

    book = StatsBook(
        clients=[p.name for p in plans if isinstance(p, TunnelClientPlan)],
        config=lambda: redact(msgspec.to_builtins(reloader.config)),
    )

    def planned(reloaded: Reloaded) -> None:
        from burrow.config.planset import decode_planset

        book.set_clients(p.name for p in decode_planset(reloaded.config).clients)

    reloader.on_planned = planned
    try:
        server = AdminServer(
            book, admin.host, admin.port, token=admin.token, metrics_path=admin.metrics_path,
            events=book.recent,
        )  # fmt: skip
    except OSError as exc:
        event(log, logging.ERROR, "admin.bind_failed", address=admin.address, error=str(exc),
              key="burrow.admin", fix="pick a free port for [burrow] admin")  # fmt: skip
        return ExitCode.FAILURE
    server.start()
    # The supervisor's own warnings and errors (worker exits, reload failures) feed /api/events.
    logging.getLogger(ROOT).addHandler(RingHandler(book.recent))
    event(log, logging.INFO, "admin.listening", address=server.address,
          token="required" if admin.token else "none")  # fmt: skip
    return book, server


def run(
    config: Config,
    plans: Sequence[ServicePlan],
    *,
    workers: int | None,
    source: str | None,
    admin: AdminPlan | None = None,
    cluster: ClusterPlan | None = None,
) -> int:
    """Run every service of ``config`` until signalled; returns the exit code.

    A worker pool, or this one process when ``oneproc.one_process`` says so (only tunnel
    clients and visitors, and no worker count asked for).
    """
    from burrow.config.plan import listen_specs

    settings = config.burrow
    if settings.log_output not in (None, "stderr"):
        try:
            redirect_stderr(settings.log_output)
        except OSError as exc:
            sys.stderr.write(
                f"burrow: config error: burrow.log_output: cannot open {settings.log_output}: "
                f"{exc.strerror} (fix: a writable file path, stderr, stdout or none)\n"
            )
            return ExitCode.CONFIG
    setup_logging(settings.log_level, settings.log_format, process="main")
    before, after = raise_nofile()
    if after != before:
        event(log, logging.DEBUG, "supervisor.nofile_raised", soft_before=before, soft=after)
    from burrow.config.errors import ConfigError

    from .relay_cert import with_relay_certs

    try:
        plans = with_relay_certs(plans)  # here, not in planning: `check` generates nothing
    except ConfigError as exc:
        event(log, logging.ERROR, "config.error", file=exc.file or source or "",
              key=exc.key or "", error=exc.problem, fix=exc.fix or "")  # fmt: skip
        return ExitCode.CONFIG
    # A cluster node always runs the pool: the supervisor is its Redis client.
    if cluster is None and one_process(plans, workers, settings.workers):
        from burrow.config.planset import encode_planset, make_planset

        return run_one_process(
            bind_requests(listen_specs(plans)),
            encode_planset(make_planset(config, plans, source)),
            source,
            log_level=settings.log_level,
            log_format=settings.log_format,
            inherited_fds=systemd.listen_fds(),
        )
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
    # Imported before the fork, so the workers share these modules' pages with the supervisor.
    import burrow.config.planset  # noqa: F401

    from . import cluster_setup  # noqa: F401
    from .arbiter import fork_zygote  # lazily: one-process mode never loads ZeroMQ

    # Here, before the admin thread, the zmq context and the listeners: the zygote is forked
    # from this process while it is one thread, so the workers share its pages.
    zygote = fork_zygote()
    try:
        return _run_pool(config, plans, count, source, admin, cluster, zygote)
    finally:
        if zygote is not None:
            zygote.close()  # a no-op once the supervisor has closed it after the first workers


def _run_pool(
    config: Config,
    plans: Sequence[ServicePlan],
    count: int,
    source: str | None,
    admin: AdminPlan | None,
    cluster: ClusterPlan | None,
    zygote: Zygote | None,
) -> int:
    from burrow.config.plan import listen_specs
    from burrow.config.planset import encode_planset, make_planset

    from .arbiter import Supervisor
    from .cluster_setup import ClusterSetup

    settings = config.burrow
    reloader = _Reloader(source, config)
    period = rules_period(config)
    hosted = _admin(admin, plans, reloader) if admin is not None else None
    if isinstance(hosted, int):
        return hosted
    supervisor = Supervisor(
        bind_requests(listen_specs(plans)),
        encode_planset(make_planset(config, plans, source)),
        workers=count,
        source=source,
        runtime_dir=settings.runtime_dir,
        log_level=settings.log_level,
        log_format=settings.log_format,
        # Workers drain for ``grace`` themselves; the SIGKILL comes a little later.
        grace=settings.grace + KILL_MARGIN,
        reload=reloader,
        live_reload=True,
        periodic=(period, reloader.rules) if period else None,
        inherited_fds=systemd.listen_fds(),
        book=hosted[0] if hosted is not None else None,
        cluster=ClusterSetup(cluster, config.burrow.cluster.internal) if cluster else None,
        zygote=zygote,
    )
    try:
        return supervisor.run()
    finally:
        if hosted is not None:
            hosted[1].close()
