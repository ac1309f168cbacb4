"""The ``burrow`` command line, with gost's flags; the only module that calls sys.exit.

    burrow [-C FILE] [-L URL]... [-F URL]... [--workers N] [-D]   run the services
    burrow check   [-C FILE] [-L URL]... [-F URL]... [--strict]   validate and summarise
    burrow convert [-C FILE] [-L URL]... [-F URL]...              print the equivalent Burrow TOML
    burrow status  [--admin ADDR] [--token T] [--watch] [--json]  read a running admin endpoint
    burrow version

With neither -C nor -L every verb uses the built-in default config (burrow/config/default.toml).
Config problems exit with ExitCode.CONFIG (78) and one line on stderr naming file, line, key
and fix; bad flags exit with ExitCode.USAGE (64). Keys that are accepted but do nothing (typos,
gost features Burrow lacks) are printed as warnings; ``check --strict`` fails on them (78).
"""

from __future__ import annotations

import argparse
import dataclasses
import pkgutil
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import msgspec

from burrow.common.exitcodes import ExitCode
from burrow.config.admin import AdminPlan, plan_admin
from burrow.config.cluster import ClusterPlan, plan_cluster, redis_label
from burrow.config.errors import ConfigError
from burrow.config.load import LineLookup, load_with_lines
from burrow.config.notices import ConfigWarning
from burrow.config.plan import build_plans
from burrow.config.plan_types import ServicePlan
from burrow.config.schema import Config, line_for
from burrow.config.toml_load import load_toml_with_lines

from .tls_check import check_entry_certs

VERBS = ("check", "convert", "version")
DEFAULT_LABEL = "<built-in default.toml>"
CLI_LABEL = "command line"


class _Usage(Exception):
    """Bad flags: argparse would exit 2 on its own; we return ExitCode.USAGE instead."""


class _Done(Exception):
    """--help printed: nothing else to do."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _Usage(message)

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            sys.stderr.write(message)
        raise _Done(status)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def _busy_poll(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 10_000:
        raise argparse.ArgumentTypeError("must be 0 (off) to 10000 microseconds")
    return value


def _parser(verb: str | None) -> _Parser:
    p = _Parser(
        prog="burrow" + (f" {verb}" if verb else ""),
        description="Reverse-proxy tunnel speaking gost's relay/tunnel protocol.",
        epilog="verbs: burrow check|convert|status|version ...  (no -C/-L: the built-in default config)",
    )
    if verb == "version":
        return p
    p.add_argument(
        "-C",
        dest="config",
        metavar="FILE",
        help="config file: .toml (Burrow) or .yaml/.json (gost)",
    )
    p.add_argument(
        "-L", dest="services", action="append", default=[], metavar="URL", help="service (gost -L)"
    )
    p.add_argument(
        "-F", dest="nodes", action="append", default=[], metavar="URL", help="chain hop (gost -F)"
    )
    if verb == "check":
        p.add_argument(
            "--strict",
            action="store_true",
            help="fail (exit 78) on warnings: unknown keys, gost features Burrow does not implement",
        )
    if verb is None:
        p.add_argument(
            "--workers",
            type=_positive,
            metavar="N",
            help="worker processes (default: one per CPU; only tunnel clients and visitors: "
            "one process, no pool)",
        )
        p.add_argument(
            "--busy-poll-us",
            type=_busy_poll,
            metavar="US",
            help="microseconds a worker keeps polling after I/O before sleeping "
            "(lower latency on VMs, more CPU; e.g. 200; default 0 = off)",
        )
        p.add_argument(
            "-metrics",
            "--metrics",
            dest="metrics",
            metavar="ADDR",
            help="admin endpoint (Prometheus /metrics and the JSON API), like [burrow] admin",
        )
        p.add_argument("-D", dest="debug", action="store_true", help="debug logging")
        p.add_argument("-V", dest="version", action="store_true", help="print the version and exit")
    return p


def _version() -> str:
    import importlib.metadata  # lazily: it pulls in email, csv and more, for `version` only

    try:
        return importlib.metadata.version("burrow-tunnel")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


def default_config_text() -> str:
    """The built-in default config (package data)."""
    # pkgutil rather than importlib.resources: same loader-based read (zip-safe), without
    # loading pathlib, zipfile and tempfile into the long-running supervisor.
    data = pkgutil.get_data("burrow.config", "default.toml")
    if data is None:
        raise FileNotFoundError("burrow/config/default.toml: the package has no loader")
    return data.decode("utf-8")


def _default_hint(text: str) -> str:
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line[2:] if line.startswith("# ") else line[1:])
    return "\n".join(lines) + "\n"


def _print_warnings(warnings: list[ConfigWarning]) -> int:
    """Print and clear the warnings (so an error afterwards does not repeat them); the count."""
    for warning in warnings:
        sys.stderr.write(f"burrow: warning: {warning}\n")
    count = len(warnings)
    warnings.clear()
    return count


def _load(
    args: argparse.Namespace, warnings: list[ConfigWarning]
) -> tuple[Config, LineLookup, str]:
    if args.config is None and not args.services:
        if args.nodes:
            raise ConfigError(
                "-F given without any -L", fix="add a -L service that uses the chain", key="-F[0]"
            )
        config, lines = load_toml_with_lines(
            default_config_text(), file=DEFAULT_LABEL, warnings=warnings
        )
        return config, lambda key: line_for(lines, key), DEFAULT_LABEL
    config, lookup = load_with_lines(args.config, args.services, args.nodes, warnings=warnings)
    return config, lookup, str(args.config) if args.config is not None else CLI_LABEL


def _plans(
    config: Config, lookup: LineLookup, label: str, warnings: list[ConfigWarning]
) -> list[ServicePlan]:
    try:
        plans = build_plans(config, source=label, warnings=warnings)
        check_entry_certs(plans)
    except ConfigError as exc:
        if exc.line is None:
            exc.line = lookup(exc.key)
        raise
    for i, warning in enumerate(warnings):
        if warning.line is None and warning.key is not None:
            warnings[i] = dataclasses.replace(warning, line=lookup(warning.key))
    return plans


def _check(args: argparse.Namespace, warnings: list[ConfigWarning]) -> int:
    from burrow.config.summary import render_summary  # lazily: `check` only

    config, lookup, label = _load(args, warnings)
    plans = _plans(config, lookup, label, warnings)
    admin = _admin_plan(config, lookup, label, plans)
    cluster = _cluster_plan(config, lookup, label)
    count = _print_warnings(warnings)
    if count and args.strict:
        sys.stderr.write(f"burrow: config error: {count} warning(s) and --strict\n")
        return ExitCode.CONFIG
    sys.stdout.write(render_summary(plans, source=label, warnings=count))
    if admin is not None:
        token = "bearer token required" if admin.token else "no token, loopback only"
        sys.stdout.write(f"admin endpoint: {admin.address} ({admin.metrics_path}; {token})\n")
    if cluster is not None:
        sd = f"; SD API on {cluster.sd_host}:{cluster.sd_port}" if cluster.sd_host else ""
        sys.stdout.write(
            f"cluster: node {cluster.node}, advertise {cluster.advertise}, ttl {cluster.ttl:g}s, "
            f"redis {redis_label(cluster.redis)}{sd}\n"
        )
    return ExitCode.OK


def _cluster_plan(config: Config, lookup: LineLookup, label: str) -> ClusterPlan | None:
    try:
        return plan_cluster(config, label)
    except ConfigError as exc:
        if exc.line is None:
            exc.line = lookup(exc.key)
        raise


def _convert(args: argparse.Namespace, warnings: list[ConfigWarning]) -> int:
    from burrow.config.dump import to_toml  # lazily: tomli_w is for `convert` only

    config, _, label = _load(args, warnings)
    _print_warnings(warnings)
    sys.stdout.write(to_toml(config, header=f"# Burrow configuration converted from {label}\n"))
    return ExitCode.OK


def _run(args: argparse.Namespace, warnings: list[ConfigWarning]) -> int:
    config, lookup, label = _load(args, warnings)
    if args.debug:
        config = msgspec.structs.replace(
            config, burrow=msgspec.structs.replace(config.burrow, log_level="debug")
        )
    if args.busy_poll_us is not None:
        config = msgspec.structs.replace(
            config, burrow=msgspec.structs.replace(config.burrow, busy_poll_us=args.busy_poll_us)
        )
    if args.metrics is not None:
        config = msgspec.structs.replace(
            config, burrow=msgspec.structs.replace(config.burrow, admin=args.metrics)
        )
    plans = _plans(config, lookup, label, warnings)
    admin = _admin_plan(config, lookup, label, plans)
    cluster = _cluster_plan(config, lookup, label)
    _print_warnings(warnings)
    if label == DEFAULT_LABEL:
        sys.stderr.write(_default_hint(default_config_text()))
    # run() re-reads a file source on SIGHUP; "cli" keeps the loaded config, so a -C file with
    # extra -L services is reported as "cli" rather than losing those services on reload.
    source = "cli" if args.services else (str(args.config) if args.config is not None else None)
    from burrow.supervisor.run import run  # lazily: check/convert must work without the runtime

    # Only the keywords in use, so a stand-in run() (tests) need not know every one.
    extra: dict[str, Any] = {}
    if admin is not None:
        extra["admin"] = admin
    if cluster is not None:
        extra["cluster"] = cluster
    return int(run(config, plans, workers=args.workers, source=source, **extra))


def _admin_plan(
    config: Config, lookup: LineLookup, label: str, plans: list[ServicePlan]
) -> AdminPlan | None:
    from burrow.config.plan import listen_specs

    try:
        return plan_admin(config, label, listen_specs(plans))
    except ConfigError as exc:
        if exc.line is None:
            exc.line = lookup(exc.key)
        raise


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default sys.argv[1:]), do the verb, return the exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] == "status":
        from burrow.supervisor.status_cmd import main as status_main

        return status_main(args_list[1:])
    verb = args_list[0] if args_list and args_list[0] in VERBS else None
    parser = _parser(verb)
    try:
        args = parser.parse_args(args_list[1:] if verb else args_list)
    except _Usage as exc:
        sys.stderr.write(f"{parser.format_usage()}burrow: {exc}\n")
        return ExitCode.USAGE
    except _Done as done:
        return int(done.args[0]) if done.args else ExitCode.OK
    if verb == "version" or getattr(args, "version", False):
        sys.stdout.write(f"burrow {_version()}\n")
        return ExitCode.OK
    warnings: list[ConfigWarning] = []
    try:
        if verb == "check":
            return _check(args, warnings)
        if verb == "convert":
            return _convert(args, warnings)
        return _run(args, warnings)
    except ConfigError as exc:
        # The warnings found before the error often explain it (a misspelled key, then the
        # rule that lost it), so they are shown first.
        _print_warnings(warnings)
        sys.stderr.write(f"burrow: config error: {exc}\n")
        return ExitCode.CONFIG


def entry() -> NoReturn:
    """Console entry point: exit with main()'s code."""
    sys.exit(main())
