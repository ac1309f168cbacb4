"""Plan parts that guard a server: per-tunnel credentials and PROXY protocol settings.

Per-tunnel credentials are Burrow's own (gost has no per-tunnel auth): top-level ``[[tunnels]]``
entries, plus those of ``burrow.tunnel_auth.file`` (a TOML file holding only ``[[tunnels]]``, so
secrets can live apart from the main config). They are read here, once, so workers receive
plain tuples. PROXY protocol uses gost's ``proxyProtocol`` metadata switch plus Burrow's
``proxyProtocol.trusted`` list (docs/security.md).
"""

from __future__ import annotations

import ipaddress
import os
import stat
import tomllib
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from burrow.common.ids import InvalidIdError, TunnelId

from .errors import ConfigError
from .metadata import get_int
from .notices import ConfigWarning, emit
from .plan_types import TunnelCredential
from .schema import Auth, Config, TunnelAuth

MAX_TUNNELS_FILE_BYTES = 4 * 1024 * 1024
PROXY_KEY = "proxyProtocol"
TRUSTED_KEY = "proxyProtocol.trusted"


class _TunnelsFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    tunnels: list[TunnelAuth] = msgspec.field(default_factory=list)


def tunnels_file(path: str, key: str, warnings: list[ConfigWarning] | None) -> list[TunnelAuth]:
    """The ``[[tunnels]]`` entries of a credentials file; ConfigError naming ``key`` if bad."""
    fix = "check the path (relative paths start at the working directory, as in gost)"
    try:
        st = os.stat(path)
        if st.st_size > MAX_TUNNELS_FILE_BYTES:
            raise ConfigError(
                "tunnel credentials file too large",
                fix=f"keep it under {MAX_TUNNELS_FILE_BYTES} bytes",
                key=key,
            )
        with open(path, encoding="utf-8") as f:
            text = f.read(MAX_TUNNELS_FILE_BYTES + 1)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"cannot read tunnel credentials file {path!r}: {exc}", fix=fix, key=key
        ) from None
    if st.st_mode & stat.S_IROTH:
        emit(
            warnings,
            ConfigWarning(
                "unknown",
                f"tunnel credentials file {path!r} is readable by every user",
                f"chmod o-r {path}",
                key=key,
            ),
        )
    try:
        return msgspec.convert(tomllib.loads(text), _TunnelsFile).tunnels
    except (tomllib.TOMLDecodeError, msgspec.ValidationError) as exc:
        raise ConfigError(
            f"tunnel credentials file {path!r}: {exc}",
            fix="the file holds only [[tunnels]] tables: id, bind/connect = {username, password}",
            key=key,
        ) from None


def _credential(auth: Auth | None, key: str) -> tuple[str, str] | None:
    if auth is None:
        return None
    if not auth.password:
        raise ConfigError(
            "a tunnel credential without a password",
            fix="set password (a long random string), or remove the credential",
            key=f"{key}.password",
        )
    return (auth.username, auth.password)


def tunnel_credentials(
    config: Config,
    servers: Mapping[str, int],
    extra: Sequence[TunnelAuth],
    extra_key: str,
) -> dict[str, tuple[TunnelCredential, ...]]:
    """Per server service name: its tunnel credentials (``servers``: name -> service index)."""
    out: dict[str, dict[str, TunnelCredential]] = {name: {} for name in servers}
    entries = [(e, f"tunnels[{i}]") for i, e in enumerate(config.tunnels)]
    entries += [(e, f"{extra_key} tunnels[{i}]") for i, e in enumerate(extra)]
    for entry, key in entries:
        try:
            tid = TunnelId.parse(entry.id).text
        except InvalidIdError:
            raise ConfigError(
                f"tunnel ID {entry.id!r} is not a UUID",
                fix="use the tunnel's UUID",
                key=f"{key}.id",
            ) from None
        bind = _credential(entry.bind, f"{key}.bind")
        connect = _credential(entry.connect, f"{key}.connect")
        if bind is None and connect is None:
            raise ConfigError(
                f"tunnel {tid[:8]} has neither a bind nor a connect credential",
                fix="add bind = {username, password} and/or connect = {...}",
                key=key,
            )
        if entry.service is not None and entry.service not in servers:
            raise ConfigError(
                f"no relay/tunnel server service named {entry.service!r}",
                fix=f"use one of: {', '.join(servers) or '(none)'}, or leave service out",
                key=f"{key}.service",
            )
        names = [entry.service] if entry.service is not None else list(servers)
        for name in names:
            if tid in out[name]:
                raise ConfigError(
                    f"tunnel {tid[:8]} has two credential entries for service {name!r}",
                    fix="keep one [[tunnels]] entry per tunnel ID",
                    key=f"{key}.id",
                )
            out[name][tid] = TunnelCredential(tid, bind, connect)
    return {name: tuple(creds.values()) for name, creds in out.items()}


def _md_value(mds: Sequence[Mapping[str, Any]], key: str) -> tuple[int, Any] | None:
    for i, md in enumerate(mds):
        if md.get(key.lower()) is not None:
            return i, md[key.lower()]
    return None


def proxy_settings(
    mds: Sequence[Mapping[str, Any]], wheres: Sequence[str]
) -> tuple[int, tuple[str, ...]]:
    """``(version, trusted CIDRs)`` of a server from service, then handler metadata."""
    hit = _md_value(mds, PROXY_KEY)
    if hit is None:
        return 0, ()
    i = hit[0]
    version = get_int(mds[i], PROXY_KEY, where=wheres[i])
    key = f"{wheres[i]}.{PROXY_KEY.lower()}"
    if version not in (0, 1, 2):
        raise ConfigError(f"proxyProtocol {version} is not 0, 1 or 2", fix="use 1 or 2", key=key)
    if version == 0:
        return 0, ()
    found = _md_value(mds, TRUSTED_KEY)
    if found is None:
        raise ConfigError(
            "proxyProtocol is on but no network is trusted to send PROXY headers",
            fix=f'set {TRUSTED_KEY} to the load balancer\'s networks, e.g. ["10.0.0.0/8"] '
            '(["0.0.0.0/0", "::/0"] trusts everyone, as gost does)',
            key=key,
        )
    j, raw = found
    tkey = f"{wheres[j]}.{TRUSTED_KEY.lower()}"
    items = raw.split(",") if isinstance(raw, str) else raw
    if not isinstance(items, list) or not items:
        raise ConfigError(
            f"{TRUSTED_KEY} must be a list of networks", fix='e.g. ["10.0.0.0/8"]', key=tkey
        )
    nets: list[str] = []
    for n, item in enumerate(items):
        try:
            nets.append(str(ipaddress.ip_network(str(item).strip(), strict=False)))
        except ValueError:
            raise ConfigError(
                f"{item!r} is not an IP network",
                fix="use CIDRs such as 10.0.0.0/8 or 2001:db8::/32, or plain addresses",
                key=f"{tkey}[{n}]",
            ) from None
    return version, tuple(nets)


def client_proxy_protocol(md: Mapping[str, Any], where: str) -> int:
    """PROXY version a tunnel client sends to its backends (gost's rtcp handler option)."""
    version = get_int(md, f"handler.{PROXY_KEY}", PROXY_KEY, where=where)
    if version not in (0, 1, 2):
        raise ConfigError(
            f"proxyProtocol {version} is not 0, 1 or 2",
            fix="use 1 (text) or 2 (binary)",
            key=f"{where}.{PROXY_KEY.lower()}",
        )
    return version
