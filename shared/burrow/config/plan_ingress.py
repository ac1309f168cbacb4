"""Ingress rules as plans carry them: inline rules, the ``tunnel=`` shorthand, rules files.

Each rule is a (hostname, endpoint) pair whose endpoint is a tunnel UUID (``$``-prefixed when
private); anything else is a ConfigError with the key path and a fix. Rules files are read here,
once, so workers receive plain rules.
"""

from __future__ import annotations

import os

from burrow.common.hostport import split_host_rest
from burrow.common.ids import InvalidIdError, parse_uuid

from .errors import ConfigError

MAX_INGRESS_FILE_BYTES = 16 * 1024 * 1024


def rule_checked(hostname: str, endpoint: str, key: str) -> tuple[str, str]:
    """An ingress rule with both halves; a missing one is an error, not a vanished rule."""
    if not hostname.strip():
        raise ConfigError(
            "ingress rule without a hostname",
            key=f"{key}.hostname",
            fix='add hostname: "example.com" (".example.com" matches its subdomains too)',
        )
    if not endpoint.strip():
        raise ConfigError(
            f"ingress rule for {hostname!r} without an endpoint",
            key=f"{key}.endpoint",
            fix="add endpoint: <tunnel uuid> ($<uuid> for a private rule)",
        )
    return _rule(hostname, endpoint, f"{key}.endpoint")


def shorthand_rules(text: str, key: str) -> tuple[tuple[str, str], ...]:
    """The ``tunnel=host:uuid,host:uuid`` shorthand; a malformed entry is an error."""
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for entry in text.split(","):
        entry = entry.strip()
        if not entry:
            continue  # a trailing comma
        host, sep, endpoint = split_host_rest(entry)
        host, endpoint = host.strip(), endpoint.strip()
        if not sep or not host or not endpoint:
            raise ConfigError(
                f"tunnel entry {entry!r} is not host:uuid",
                key=key,
                fix="write tunnel=example.com:<uuid>[,other.example:<uuid>...]"
                " (an IPv6 host in brackets: [::1]:<uuid>)",
            )
        if host.lower() in seen:
            raise ConfigError(
                f"host {host!r} is given twice in tunnel=; only the first would ever match",
                key=key,
                fix="keep one entry per host",
            )
        seen.add(host.lower())
        out.append(_rule(host, endpoint, key))
    return tuple(out)


def _rule(hostname: str, endpoint: str, key: str) -> tuple[str, str]:
    try:
        parse_uuid(endpoint.removeprefix("$"))
    except InvalidIdError:
        raise ConfigError(
            f"endpoint {endpoint!r} for {hostname!r} is not a tunnel UUID",
            key=key,
            fix="use <uuid>, or $<uuid> for a private rule",
        ) from None
    return hostname, endpoint


def rules_file(path: str, key: str) -> list[tuple[str, str]]:
    fix = "check the path (relative paths start at the working directory, as in gost)"
    try:
        if os.stat(path).st_size > MAX_INGRESS_FILE_BYTES:
            raise ConfigError(
                "ingress file too large",
                fix=f"keep it under {MAX_INGRESS_FILE_BYTES} bytes",
                key=key,
            )
        with open(path, encoding="utf-8") as f:
            text = f.read(MAX_INGRESS_FILE_BYTES + 1)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read ingress file {path!r}: {exc}", fix=fix, key=key) from None
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        fields = line.split("#", 1)[0].split()
        if len(fields) >= 2:
            out.append(_rule(fields[0], fields[1], f"{key} (line {n})"))
    return out
