"""Config warnings as data: keys that are accepted but not used, and why (issue 10, item 4).

gost ignores what it does not know, so Burrow accepts it too, but a typo must not pass in
silence. Every accepted-and-unused key becomes a ConfigWarning of one of three kinds:

* ``unknown``  - neither Burrow nor gost knows the key; a did-you-mean names a near miss;
* ``gost``     - a real gost key or section (log, api, metrics, ...) Burrow does not implement;
* ``not-yet``  - a Burrow key that is accepted but not acted on yet (table NOT_YET_USED).

The loaders collect them in a list next to the Config; ``burrow check`` prints them and
``--strict`` turns them into exit 78.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from .errors import describe
from .metadata import KNOWN_METADATA

log = logging.getLogger("burrow.config")

Kind = Literal["unknown", "gost", "not-yet"]
GOST_FEATURE = "gost feature Burrow does not implement"

# Burrow keys that are accepted but not acted on yet; remove a line when its feature lands.
# Key paths use [] for "any index".
NOT_YET_USED: dict[str, str] = {}

# gost v3 config sections and structural fields (x/config) that Burrow has no use for.
GOST_SECTIONS = frozenset(
    [
        "hops",
        "admissions",
        "bypasses",
        "resolvers",
        "hosts",
        "routers",
        "sds",
        "recorders",
        "limiters",
        "climiters",
        "rlimiters",
        "observers",
        "loggers",
        "tls",
        "log",
        "profiling",
        "api",
        "metrics",
    ]
)
GOST_FIELDS: dict[str, frozenset[str]] = {
    "Service": frozenset(
        [
            "interface",
            "sockopts",
            "admission",
            "admissions",
            "bypass",
            "bypasses",
            "resolver",
            "hosts",
            "limiter",
            "climiter",
            "rlimiter",
            "logger",
            "loggers",
            "observer",
            "recorders",
            "status",
        ]
    ),
    "Handler": frozenset(["retries", "chaingroup", "tls", "limiter", "observer"]),
    "Listener": frozenset(["chaingroup", "auther", "authers", "auth"]),
    "Forwarder": frozenset(["name"]),
    "ForwardNode": frozenset(["bypass", "bypasses", "auth", "metadata", "matcher"]),
    "Chain": frozenset(["metadata", "selector"]),
    "Hop": frozenset(
        [
            "interface",
            "sockopts",
            "bypass",
            "bypasses",
            "resolver",
            "hosts",
            "reload",
            "file",
            "redis",
            "http",
            "plugin",
        ]
    ),
    "ChainNode": frozenset(
        [
            "host",
            "network",
            "protocol",
            "path",
            "interface",
            "netns",
            "sockopts",
            "bypass",
            "bypasses",
            "resolver",
            "hosts",
            "http",
            "tls",
            "auth",
            "metadata",
            "filter",
            "matcher",
        ]
    ),
    "Connector": frozenset(["tls"]),
    "Dialer": frozenset(["auth"]),
    "Ingress": frozenset(["redis", "http", "plugin"]),
    "Auther": frozenset(["reload", "file", "redis", "http", "plugin"]),
    "NodeTLS": frozenset(["options"]),
    "TLSSettings": frozenset(["options"]),
}

# Metadata gost v3 reads in handlers, listeners, dialers, connectors and services (x/handler,
# x/listener, x/dialer, x/connector, x/service) that Burrow does not act on.
GOST_METADATA = frozenset(
    k.lower()
    for k in [
        "entrypoint.id",
        "entrypoint.proxyProtocol",
        "entrypoint.keepalive",
        "entrypoint.compression",
        "entrypoint.readTimeout",
        "sniffing.websocket",
        "sniffing.websocket.sampleRate",
        "tunnel.ttl",
        "sd",
        "observePeriod",
        "observer.period",
        "observer.observePeriod",
        "observer.resetTraffic",
        "limiter.refreshInterval",
        "limiter.cleanupInterval",
        "bind",
        "udpBufferSize",
        "hash",
        "mitm.certFile",
        "mitm.caCertFile",
        "mitm.keyFile",
        "mitm.caKeyFile",
        "mitm.alpn",
        "mitm.bypass",
        "readQueueSize",
        "backlog",
        "mptcp",
        "keepalivePeriod",
        "interface",
        "so_mark",
        "netns",
        "dialTimeout",
        "enableStats",
        "preUp",
        "preDown",
        "postUp",
        "postDown",
        "ignoreChain",
        "record.mode",
        "compression",
        "noTLS",
        "probeResist",
        "knock",
        "proxyAgent",
    ]
)


@dataclass(frozen=True, slots=True)
class ConfigWarning:
    """An accepted key that does nothing: where it is, why, and what to do."""

    kind: Kind
    problem: str
    fix: str
    key: str | None = None
    file: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        return describe(self.problem, self.fix, self.key, self.file, self.line)


def did_you_mean(word: str, known: Iterable[str]) -> str | None:
    """The known key closest to ``word`` (case-insensitive), if one is close enough."""
    import difflib  # lazily: only a config with a typo needs it, and it stays loaded for good

    by_lower = {k.lower(): k for k in known}
    hits = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.75)
    return by_lower[hits[0]] if hits else None


def unknown_key(
    key: str, *, known: Iterable[str], gost: Iterable[str], what: str = "key"
) -> tuple[Kind, str, str]:
    """Kind, problem and fix for an accepted key Burrow does not use."""
    if key.lower() in {g.lower() for g in gost}:
        return "gost", f"{GOST_FEATURE}: {what} {key!r} is ignored", "remove it, or run gost for it"
    near = did_you_mean(key, known)
    if near is not None:
        return "unknown", f"unknown {what} {key!r} (did you mean {near!r}?)", f"rename it to {near}"
    return "unknown", f"unknown {what} {key!r}", "remove it or check the spelling"


def metadata_warning(key: str) -> tuple[Kind, str, str] | None:
    """None for metadata Burrow reads, else what unknown_key says about it."""
    if key.lower() in KNOWN_METADATA:
        return None
    return unknown_key(key, known=KNOWN_METADATA.values(), gost=GOST_METADATA, what="metadata key")


def emit(warnings: list[ConfigWarning] | None, warning: ConfigWarning) -> None:
    """Append to the caller's list, or log when nobody collects (e.g. the SIGHUP reload)."""
    if warnings is None:
        log.warning("%s", warning)
    elif warning not in warnings:
        warnings.append(warning)
