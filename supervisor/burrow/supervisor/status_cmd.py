"""``burrow status``: one screen of tunnels, connectors, workers and traffic rates (like frpc status).

Reads a running Burrow's admin API (docs/admin.md). Rates come from two samples ``--interval``
seconds apart; ``--watch`` keeps sampling and redraws; ``--json`` prints the API's answers.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from burrow.common.exitcodes import ExitCode
from burrow.common.hostport import HostPortError, parse_host_port

DEFAULT_ADMIN = "127.0.0.1:9100"
TIMEOUT = 5.0


class StatusError(Exception):
    """The admin API could not be read; the message says why and what to do."""


def fetch(admin: str, path: str, token: str | None, *, optional: bool = False) -> Any:
    """GET ``path`` from the admin endpoint ``host:port`` and decode its JSON.

    ``optional``: a 404 (the node has no such part, e.g. no cluster) answers None."""
    try:
        host, port = parse_host_port(admin)
    except HostPortError as exc:
        raise StatusError(f"--admin {admin!r}: {exc}") from exc
    conn = http.client.HTTPConnection(host or "127.0.0.1", port, timeout=TIMEOUT)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        body = resp.read()
    except OSError as exc:
        raise StatusError(
            f"cannot reach the admin endpoint {admin}: {exc} "
            "(is burrow running with [burrow] admin set to this address?)"
        ) from exc
    finally:
        conn.close()
    if resp.status == 401:
        raise StatusError("the admin endpoint wants a token: pass --token or BURROW_ADMIN_TOKEN")
    if resp.status == 404 and optional:
        return None
    if resp.status != 200:
        raise StatusError(f"{path}: HTTP {resp.status}")
    return json.loads(body)


def sample(admin: str, token: str | None) -> dict[str, Any]:
    """summary, tunnels and workers as the API answers them."""
    return {
        "summary": fetch(admin, "/api/summary", token),
        "tunnels": fetch(admin, "/api/tunnels", token)["tunnels"],
        "workers": fetch(admin, "/api/workers", token)["workers"],
        "cluster": fetch(admin, "/api/cluster", token, optional=True),
    }


def render_cluster(c: dict[str, Any]) -> list[str]:
    """The cluster part of the screen: Redis, the nodes, and where each tunnel lives."""
    alive = sum(1 for n in c["nodes"] if n.get("alive"))
    redis = "up" if c["redis"] == "up" else f"DOWN ({c['reason']}): cross-node requests get 503"
    lines = [
        "",
        (
            f"cluster: node {c['node']}  advertise {c['advertise']}  redis {redis}  "
            f"nodes alive {alive}  outages {c['outages']}"
        ),
        f"{'NODE':<20} {'KIND':<7} {'ALIVE':<5} {'ADVERTISE':<24} {'HEARTBEAT':>9}",
    ]
    for n in c["nodes"]:
        age = "this" if n.get("self") else f"{n.get('heartbeat_age', 0):.1f}s ago"
        lines.append(
            f"{n['node']:<20} {n['kind']:<7} {'yes' if n['alive'] else 'no':<5} "
            f"{n['advertise']:<24} {age:>9}"
        )
    lines.append(f"{'TUNNEL':<10} LIVES ON")
    for tid, rows in c["tunnels"].items():
        where = sorted({f"{r['node']} ({r['kind']}, {r['network']})" for r in rows})
        lines.append(f"{tid[:8]:<10} {', '.join(where)}")
    return lines


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _rate(new: int, old: int | None, seconds: float) -> str:
    if old is None or seconds <= 0:
        return "-"
    return _size(max(0, new - old) / seconds) + "/s"


def render(now: dict[str, Any], before: dict[str, Any] | None, seconds: float) -> str:
    """The status screen for sample ``now`` (rates against ``before``)."""
    s = now["summary"]
    lines = [
        (
            f"burrow: {'ready' if s['ready'] else 'NOT READY (' + s['not_ready'] + ')'}  "
            f"up {s['uptime_seconds']:.0f}s  workers {s['workers_ready']}/{s['workers']}  "
            f"restarts {s['restarts']}  reloads ok {s['reloads']['ok']} failed {s['reloads']['failed']}"
        ),
        (
            f"tunnels up {s['tunnels_up']}  connectors {s['connectors']}  "
            f"streams open {s['streams_open']}  in {_size(s['bytes_in'])}  out {_size(s['bytes_out'])}"
        ),
        "",
        (
            f"{'TUNNEL':<10} {'UP':<4} {'CONN':>4} {'STREAMS':>7} {'IN':>11} {'OUT':>11} "
            f"{'IN/s':>12} {'OUT/s':>12}"
        ),
    ]
    old = {t["tunnel_id"]: t for t in before["tunnels"]} if before else {}
    for t in now["tunnels"]:
        o = old.get(t["tunnel_id"])
        lines.append(
            f"{t['tunnel']:<10} {'yes' if t['up'] else 'no':<4} {len(t['connectors']):>4} "
            f"{t['streams_open']:>7} {_size(t['bytes_in']):>11} {_size(t['bytes_out']):>11} "
            f"{_rate(t['bytes_in'], o and o['bytes_in'], seconds):>12} "
            f"{_rate(t['bytes_out'], o and o['bytes_out'], seconds):>12}"
        )
        for c in t["connectors"]:
            since = time.strftime("%H:%M:%S", time.localtime(c["since"]))
            lines.append(
                f"  {c['connector_id'][:8]} w{c['worker']} {c['role']:<6} {c['dialect']:<6} "
                f"{c['network']:<3} {c['peer']:<22} since {since} streams {c['streams_open']}"
            )
    lines += ["", f"{'WORKER':<6} {'PID':>7} {'GEN':>3} {'READY':<5} {'CONN':>4} {'STREAMS':>7}"]
    for w in now["workers"]:
        lines.append(
            f"{w['index']:<6} {w['pid']:>7} {w['generation']:>3} "
            f"{'yes' if w['ready'] else 'no':<5} {w['connectors']:>4} {w['streams_open']:>7}"
        )
    if now.get("cluster") is not None:
        lines += render_cluster(now["cluster"])
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str]) -> int:
    """``burrow status [--admin ADDR] [--token T] [--watch] [--json] [--interval S]``."""
    p = argparse.ArgumentParser(prog="burrow status", description=__doc__.splitlines()[0])
    p.add_argument("--admin", default=DEFAULT_ADMIN, metavar="ADDR", help="admin host:port")
    p.add_argument("--token", help="bearer token (default: $BURROW_ADMIN_TOKEN)")
    p.add_argument("--watch", action="store_true", help="redraw every interval until Ctrl-C")
    p.add_argument("--json", action="store_true", help="print the API's answers as JSON")
    p.add_argument("--interval", type=float, default=1.0, metavar="S", help="seconds per sample")
    try:
        args = p.parse_args(list(argv))
    except SystemExit as exc:
        return ExitCode.OK if exc.code == 0 else ExitCode.USAGE
    token = args.token or os.environ.get("BURROW_ADMIN_TOKEN") or None
    try:
        if args.json:
            sys.stdout.write(json.dumps(sample(args.admin, token), indent=2) + "\n")
            return ExitCode.OK
        before = sample(args.admin, token)
        at = time.monotonic()
        while True:
            time.sleep(max(0.05, args.interval))  # the sampling period, not a synchronisation
            now = sample(args.admin, token)
            t = time.monotonic()
            screen = render(now, before, t - at)
            sys.stdout.write(("\x1b[H\x1b[2J" if args.watch else "") + screen)
            sys.stdout.flush()
            if not args.watch:
                return ExitCode.OK
            before, at = now, t
    except StatusError as exc:
        sys.stderr.write(f"burrow status: {exc}\n")
        return ExitCode.FAILURE
    except KeyboardInterrupt:
        return ExitCode.OK
