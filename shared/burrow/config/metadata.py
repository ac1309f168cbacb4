"""Typed reads of gost metadata and addresses (docs/configuration.md,
Metadata keys Burrow reads).

gost metadata is a free-form mapping whose keys are case-insensitive; every loader stores them
lower-cased, so the getters look keys up lower-cased too. Values are coerced the way gost's
``metadata/util`` does (booleans from ints and strings, durations from Go duration strings or
integer seconds), except that a value gost would silently read as zero is a ConfigError here.
Also here: ``host:port`` addresses (Endpoint) and the smux options built from ``mux.*`` keys;
plan.py re-exports both.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from burrow.common.hostport import FORM_FIX, HostPortError, join_host_port, parse_host_port

from .errors import ConfigError

# Go's time.ParseDuration units, in seconds.
_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_DURATION_PART = re.compile(r"([0-9]*\.?[0-9]*)(ns|us|µs|μs|ms|s|m|h)")
_TRUE = frozenset({"1", "t", "true"})
_FALSE = frozenset({"0", "f", "false"})
MAX_MUX_BUFFER = 1 << 30
_HOST = re.compile(r"[A-Za-z0-9._~%-]*")
MAX_DURATION = 10 * 365 * 86400.0  # longer than any sane timeout; Go's own limit is ~292 years

# Every metadata key Burrow reads, lower-cased (gost metadata is case-insensitive), mapped to
# gost's spelling for messages. Anything else is kept and reported (notices.py).
KNOWN_METADATA: dict[str, str] = {
    k.lower(): k
    for k in [
        "entryPoint",
        "entryPoints",
        "ingress",
        "tunnel",
        "tunnel.direct",
        "tunnel.id",
        "tunnelID",
        "tunnel.weight",
        "readTimeout",
        "nodelay",
        "connectTimeout",
        "relay.proxy",
        "sniffing",
        "sniffing.timeout",
        "keepalive",
        "ttl",
        "keepalive.ttl",
        "readBufferSize",
        "udp.bufferSize",
        "mux.version",
        "mux.keepaliveInterval",
        "mux.keepaliveTimeout",
        "mux.keepaliveDisabled",
        "mux.maxFrameSize",
        "mux.maxReceiveBuffer",
        "mux.maxStreamBuffer",
        "proxyProtocol",
        "proxyProtocol.trusted",
        "handler.proxyProtocol",
        "entrypoint.tls.certs",
        "entrypoint.tls.dir",
        "entrypoint.tls.redirect",
        "entrypoint.tls.handshakeTimeout",
        "path",
        "ws.path",
        "host",
        "ws.host",
        "handshakeTimeout",
        "ws.handshakeTimeout",
    ]
}


def parse_duration(value: object) -> float:
    """Seconds from a gost duration: int/float seconds, Go syntax ("1h2m3.5s"), or "30".

    Raises ValueError with a short reason.
    """
    if isinstance(value, bool):
        raise ValueError("a boolean is not a duration")  # noqa: TRY004 - config errors are ValueError
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        seconds = _parse_go_duration(value.strip())
    else:
        raise ValueError(f"a {type(value).__name__} is not a duration")  # noqa: TRY004
    if math.isnan(seconds) or seconds < 0:
        raise ValueError("a duration must not be negative")
    if seconds > MAX_DURATION:
        raise ValueError("duration too long")
    return seconds


def _parse_go_duration(text: str) -> float:
    if not text:
        raise ValueError("empty duration")
    if re.fullmatch(r"[+-]?[0-9]+", text):
        # gost falls back to integer seconds when Go's parser refuses the string.
        return float(int(text))
    sign = 1.0
    body = text
    if body[0] in "+-":
        sign = -1.0 if body[0] == "-" else 1.0
        body = body[1:]
    if body == "0":
        return 0.0
    total = 0.0
    pos = 0
    while pos < len(body):
        m = _DURATION_PART.match(body, pos)
        if m is None or m.group(1) in ("", "."):
            raise ValueError(f"{text!r} is not a Go duration like 1h2m3.5s, 300ms or 10s")
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos == 0:
        raise ValueError(f"{text!r} is not a Go duration like 1h2m3.5s, 300ms or 10s")
    return sign * total


def _find(md: Mapping[str, Any], keys: tuple[str, ...]) -> tuple[str, Any] | None:
    for key in keys:
        k = key.lower()
        if k in md and md[k] is not None:
            return k, md[k]
    return None


def _error(where: str | None, key: str, problem: str, fix: str) -> ConfigError:
    return ConfigError(problem, fix=fix, key=f"{where}.{key}" if where else key)


def get_bool(
    md: Mapping[str, Any], *keys: str, default: bool = False, where: str | None = None
) -> bool:
    """First present key as a boolean (bool, int != 0, or true/false/1/0/t/f)."""
    hit = _find(md, keys)
    if hit is None:
        return default
    key, value = hit
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise _error(where, key, f"{value!r} is not a boolean", "use true or false")


def get_int(md: Mapping[str, Any], *keys: str, default: int = 0, where: str | None = None) -> int:
    """First present key as an integer (int or decimal string)."""
    hit = _find(md, keys)
    if hit is None:
        return default
    key, value = hit
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?[0-9]{1,18}\s*", value):
        return int(value)
    raise _error(where, key, f"{value!r} is not a whole number", "use a whole number such as 8")


def get_float(
    md: Mapping[str, Any], *keys: str, default: float = 0.0, where: str | None = None
) -> float:
    """First present key as a number (int, float or numeric string)."""
    hit = _find(md, keys)
    if hit is None:
        return default
    key, value = hit
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise _error(where, key, f"{value!r} is not a number", "use a number such as 1.5")


def get_duration(
    md: Mapping[str, Any], *keys: str, default: float | None = None, where: str | None = None
) -> float | None:
    """First present key as seconds: Go duration string ("1h2m3.5s", "300ms") or int seconds."""
    hit = _find(md, keys)
    if hit is None:
        return default
    key, value = hit
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise _error(where, key, str(exc), 'use a duration such as "10s", "300ms" or 15') from None


def get_str(
    md: Mapping[str, Any], *keys: str, default: str | None = None, where: str | None = None
) -> str | None:
    """First present key as a string (numbers are formatted, as gost does)."""
    hit = _find(md, keys)
    if hit is None:
        return default
    key, value = hit
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise _error(where, key, f"{value!r} is not a string", "quote the value")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A listen or dial address; host "" means all interfaces (listen) or 127.0.0.1 (dial)."""

    host: str
    port: int

    def __str__(self) -> str:
        return join_host_port(self.host, self.port)


@dataclass(frozen=True, slots=True)
class MuxOptions:
    """smux session settings (docs/configuration.md, Metadata keys Burrow reads)."""

    version: int
    keepalive_interval: float
    keepalive_timeout: float
    keepalive_disabled: bool
    max_frame_size: int
    max_receive_buffer: int
    max_stream_buffer: int


MUX_DEFAULTS: dict[str, MuxOptions] = {
    "relay": MuxOptions(1, 10.0, 30.0, False, 32768, 4194304, 65536),
    "tunnel": MuxOptions(2, 10.0, 30.0, False, 32768, 4194304, 1048576),
}


def parse_endpoint(text: str, *, key: str, default_port: int | None = None) -> Endpoint:
    """``host:port``, ``:port`` or ``[v6]:port``; ``default_port`` when the port may be omitted."""
    s = text.strip()
    try:
        host, port = parse_host_port(s, default_port=default_port)
    except HostPortError as exc:
        raise ConfigError(exc.problem, fix=exc.fix, key=key) from None
    if not s.startswith("[") and not _HOST.fullmatch(host):
        raise ConfigError(f"{host!r} is not a host name or IP address", fix=FORM_FIX, key=key)
    return Endpoint(host, port)


def mux_options(
    dialect: str, md: dict[str, object], *, where: str
) -> tuple[MuxOptions, int | None]:
    """The dialect's smux defaults with explicit ``mux.*`` overrides; also the explicit version."""
    base = MUX_DEFAULTS[dialect]
    version = get_int(md, "mux.version", where=where)
    if version not in (0, 1, 2):
        raise ConfigError(
            f"smux version {version} does not exist",
            fix="use 1 (relay) or 2 (tunnel)",
            key=f"{where}.mux.version",
        )

    def positive_int(key: str, default: int, limit: int) -> int:
        value = get_int(md, key, where=where)
        if value < 0 or value > limit:
            raise ConfigError(
                f"{value} is out of range",
                fix=f"use 1 to {limit} (0 = default)",
                key=f"{where}.{key}",
            )
        return value or default

    interval = get_duration(md, "mux.keepaliveinterval", where=where) or base.keepalive_interval
    timeout = get_duration(md, "mux.keepalivetimeout", where=where) or base.keepalive_timeout
    if timeout < interval:
        raise ConfigError(
            "keepalive timeout is shorter than the keepalive interval",
            fix="make mux.keepaliveTimeout >= mux.keepaliveInterval",
            key=f"{where}.mux.keepalivetimeout",
        )
    receive = positive_int("mux.maxreceivebuffer", base.max_receive_buffer, MAX_MUX_BUFFER)
    stream = positive_int("mux.maxstreambuffer", base.max_stream_buffer, MAX_MUX_BUFFER)
    if stream > receive:
        raise ConfigError(
            "stream buffer larger than the session buffer",
            fix="make mux.maxStreamBuffer <= mux.maxReceiveBuffer",
            key=f"{where}.mux.maxstreambuffer",
        )
    options = MuxOptions(
        version or base.version,
        interval,
        timeout,
        get_bool(md, "mux.keepalivedisabled", where=where),
        positive_int("mux.maxframesize", base.max_frame_size, 65535),
        receive,
        stream,
    )
    return options, version or None
