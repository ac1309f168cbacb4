"""The admin endpoint's settings: ``[burrow] admin``, its token, and the checks made at startup.

Off unless ``admin`` is set (or gost's ``-metrics ADDR`` / ``metrics.addr``). Loopback needs no
token; any other address must have ``admin_token`` or ``admin_token_file`` (docs/admin.md). The
admin port never shares a port with a listener of the config (entry point, relay port, visitor).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import msgspec

from burrow.common.hostport import HostPortError, parse_host_port

from .errors import ConfigError
from .plan_types import ListenSpec
from .schema import Config
from .secret_value import read_secret

DEFAULT_METRICS_PATH = "/metrics"
# A token shorter than this is guessable over a few days of scraping-rate attempts.
MIN_TOKEN = 16


class AdminPlan(msgspec.Struct, frozen=True):
    """Where the admin endpoint listens and what it requires."""

    host: str
    port: int
    token: str | None = None
    metrics_path: str = DEFAULT_METRICS_PATH

    @property
    def address(self) -> str:
        """``host:port`` as written in a URL (IPv6 in brackets)."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``; "" (every interface) is not."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _token(config: Config, file: str | None) -> str | None:
    s = config.burrow
    return read_secret(
        s.admin_token,
        s.admin_token_file,
        key="burrow.admin_token",
        what="admin token",
        min_length=MIN_TOKEN,
        file=file,
    )


def _clash(host: str, port: int, spec: ListenSpec) -> bool:
    other = spec.endpoint
    if other.port != port or port == 0:
        return False
    wild = ("", "0.0.0.0", "::")
    return host == other.host or host in wild or other.host in wild


def plan_admin(
    config: Config, file: str | None, listens: Sequence[ListenSpec] = ()
) -> AdminPlan | None:
    """The admin endpoint of ``config`` (None: off); ConfigError naming file, key and fix."""
    s = config.burrow
    if s.admin is None:
        return None
    key = "burrow.admin"
    try:
        host, port = parse_host_port(s.admin)
    except HostPortError as exc:
        raise ConfigError(
            f"admin address {s.admin!r}: {exc}",
            fix='write host:port, e.g. admin = "127.0.0.1:9100"',
            key=key,
            file=file,
        ) from exc
    path = s.admin_metrics_path or DEFAULT_METRICS_PATH
    if not path.startswith("/") or path.startswith("/api/") or path in ("/healthz", "/readyz"):
        raise ConfigError(
            f"metrics path {path!r} must start with / and not be an admin API path",
            fix='use the default "/metrics"',
            key="burrow.admin_metrics_path",
            file=file,
        )
    token = _token(config, file)
    if token is None and not is_loopback(host):
        raise ConfigError(
            f"the admin endpoint {s.admin} is not on a loopback address and has no token",
            fix="set [burrow] admin_token (or admin_token_file), or listen on 127.0.0.1",
            key=key,
            file=file,
        )
    for spec in listens:
        if _clash(host, port, spec):
            raise ConfigError(
                f"admin address {s.admin} uses the port of {spec.service}'s {spec.role} "
                f"({spec.endpoint})",
                fix="give the admin endpoint a port of its own, e.g. 9100",
                key=key,
                file=file,
            )
    return AdminPlan(host or "0.0.0.0", port, token, path)
