"""gost's ``-L``/``-F`` command line into a Config (docs/configuration.md, Front doors).

    -L [handler[+listener]://][user:pass@]host:port[/target,target...][?k=v&...]   one service each
    -F [connector[+dialer]://][user:pass@]host:port[,host:port...][?k=v&...]       one hop each

Query parameters land in handler, listener and service metadata alike (-L), or connector and
dialer metadata (-F), except the keys gost consumes itself (auth, TLS files, selector, ...).
Generated names follow gost (service-N, target-N, chain-0, hop-N, node-N); ``taken`` lets the
caller skip names already used by a -C file so merged configs stay unambiguous.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Collection, Sequence
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from burrow.common.hostport import IPV6_FIX

from .errors import ConfigError
from .gost_names import CONNECTORS, DIALERS, HANDLERS, LISTENERS
from .metadata import parse_duration
from .notices import ConfigWarning, emit, metadata_warning
from .schema import Config
from .schema_decode import decode

log = logging.getLogger("burrow.config")

MAX_URL_LENGTH = 8192
MAX_TARGETS = 1024

# Consumed by gost itself instead of becoming metadata (§5.2, §5.3); compared lower-cased.
_SERVICE_CONSUMED = frozenset(
    [
        "auth",
        "certfile",
        "cert",
        "keyfile",
        "key",
        "cafile",
        "ca",
        "bypass",
        "admission",
        "resolver",
        "hosts",
        "climiter",
        "rlimiter",
        "retries",
    ]
)
_NODE_CONSUMED = frozenset(
    [
        "auth",
        "secure",
        "servername",
        "certfile",
        "cert",
        "keyfile",
        "key",
        "cafile",
        "ca",
        "bypass",
        "resolver",
        "hosts",
        "interface",
        "so_mark",
    ]
)
_SELECTOR = {
    "strategy": "strategy",
    "maxfails": "maxFails",
    "max_fails": "maxFails",
    "failtimeout": "failTimeout",
    "fail_timeout": "failTimeout",
}


def load_cli(
    services: Sequence[str],
    nodes: Sequence[str],
    *,
    taken: Collection[str] = (),
    warnings: list[ConfigWarning] | None = None,
) -> Config:
    """Translate -L (``services``) and -F (``nodes``) URLs the way gost's cmd package does.

    Query parameters Burrow does not read are reported once per URL (``-L[0].entrypiont``),
    not once per metadata copy.
    """
    try:
        raw = build_raw(services, nodes, taken=taken)
    except ConfigError as exc:
        raise exc.located(file="command line") from None
    config = decode(raw, strict=True, file="command line", warnings=warnings, check_metadata=False)
    for flag, urls in (("-L", services), ("-F", nodes)):
        for i, url in enumerate(urls):
            for key in _split(url, f"{flag}[{i}]", "auto")[5]:
                unused = metadata_warning(key[0])
                if unused is not None and not _consumed(key[0].lower()):
                    kind, problem, fix = unused
                    where = f"{flag}[{i}].{key[0]}"
                    emit(
                        warnings, ConfigWarning(kind, problem, fix, key=where, file="command line")
                    )
    return config


def build_raw(
    services: Sequence[str], nodes: Sequence[str], *, taken: Collection[str] = ()
) -> dict[str, Any]:
    """The plain-data config for -L/-F, before schema validation."""
    if nodes and not services:
        raise ConfigError(
            "-F given without any -L", fix="add a -L service that uses the chain", key="-F[0]"
        )
    chain_name = _free("chain", 0, taken)
    chains = []
    if nodes:
        hops = [_hop(url, i) for i, url in enumerate(nodes)]
        chains.append({"name": chain_name, "hops": hops})
    out = []
    n = 0
    for i, url in enumerate(services):
        name = _free("service", n, taken)
        n = int(name.rsplit("-", 1)[1]) + 1
        out.append(_service(url, i, name, chain_name if nodes else None))
    return {"services": out, "chains": chains}


def _consumed(key: str) -> bool:
    """Keys gost's command line turns into something other than metadata."""
    return (
        key in _SERVICE_CONSUMED
        or key in _NODE_CONSUMED
        or key in _SELECTOR
        or key.startswith("limiter")
    )


def _free(prefix: str, start: int, taken: Collection[str]) -> str:
    i = start
    while f"{prefix}-{i}" in taken:
        i += 1
    return f"{prefix}-{i}"


def _split(
    url: str, key: str, fallback: str
) -> tuple[str, str, str, str, str, list[tuple[str, str]]]:
    """scheme, userinfo, host, path, query pairs of a gost URL (§5.1)."""
    if len(url) > MAX_URL_LENGTH:
        raise ConfigError("URL too long", fix=f"keep it under {MAX_URL_LENGTH} characters", key=key)
    s = url.strip()
    if s.startswith(":") or "://" not in s:
        s = f"{fallback}://{s}"
    try:
        parts = urlsplit(s)
        query = parse_qsl(parts.query, keep_blank_values=True)
    except ValueError as exc:
        # urlsplit's only complaint about a netloc is an unbalanced IPv6 bracket
        fix = IPV6_FIX if "IPv6" in str(exc) else "write it as scheme://host:port?key=value"
        raise ConfigError(f"cannot parse {url!r}: {exc}", fix=fix, key=key) from None
    scheme = parts.scheme.lower()
    if scheme == "https":
        scheme = "http+tls"
    netloc = parts.netloc
    userinfo, _, host = netloc.rpartition("@")
    return scheme, userinfo, host, parts.path, parts.fragment, query


def _auth(userinfo: str, md: dict[str, Any], key: str) -> dict[str, str] | None:
    raw = md.pop("auth", None)
    if raw is not None:
        try:
            userinfo = base64.b64decode(str(raw), validate=True).decode()
        except ValueError:  # binascii.Error, UnicodeDecodeError, non-ASCII input
            raise ConfigError(
                "auth= is not base64 of user:pass",
                fix="use auth=$(echo -n user:pass | base64)",
                key=f"{key}.auth",
            ) from None
    if not userinfo:
        return None
    user, _, password = userinfo.partition(":")
    return {"username": unquote(user), "password": unquote(password)}


# Parameters that hold a list in one value; a repeat would silently lose all but the first.
_NO_REPEAT = frozenset(["tunnel", "entrypoint", "tunnelid", "tunnel.id", "ingress"])


def _query(pairs: list[tuple[str, str]], key: str) -> dict[str, Any]:
    md: dict[str, Any] = {}
    for k, v in pairs:
        k = k.lower()
        if k in md and k in _NO_REPEAT and md[k] != v:
            raise ConfigError(
                f"{k}= is given twice; gost would silently use only the first",
                fix=f"give {k}= once"
                + (" with comma-separated host:uuid entries" if k == "tunnel" else ""),
                key=f"{key}.{k}",
            )
        md.setdefault(k, v)  # gost takes the first value of a repeated parameter
    return md


def _selector(md: dict[str, Any], key: str) -> dict[str, Any] | None:
    given = {_SELECTOR[k]: md.pop(k) for k in list(md) if k in _SELECTOR}
    if not given:
        return None
    # CLI-built selectors get gost's command-line defaults, not the YAML ones.
    selector: dict[str, Any] = {"strategy": "round", "maxFails": 1, "failTimeout": 30.0}
    selector.update(given)
    try:
        selector["maxFails"] = int(selector["maxFails"])
        selector["failTimeout"] = parse_duration(selector["failTimeout"])
    except ValueError:
        raise ConfigError(
            "bad selector option", fix="use maxFails=<int>&failTimeout=<duration>", key=key
        ) from None
    return selector


def _scheme_pair(
    scheme: str, first: tuple[Collection[str], str], second: tuple[Collection[str], str]
) -> tuple[str, str]:
    """``A+B`` -> (A, B); a single name is both; unknown names fall back to gost's defaults (§5.2-5.3)."""
    a, _, b = scheme.partition("+")
    b = b or a
    return (a if a in first[0] else first[1]), (b if b in second[0] else second[1])


def _drop_consumed(
    md: dict[str, Any], consumed: Collection[str], key: str, also_prefix: str | None = None
) -> None:
    """Remove the options gost's CLI consumes itself (selector, bypass, ...): Burrow has no use."""
    for k in list(md):
        if k in consumed or (also_prefix is not None and k.startswith(also_prefix)):
            log.debug("%s: option %s is not used by Burrow", key, k)
            del md[k]


# TLS options gost's command line moves into the listener/dialer ``tls`` section (3.2.6 also
# takes them with a ``tls.`` prefix); compared lower-cased.
_TLS_KEYS = {
    "certfile": "certFile",
    "cert": "certFile",
    "keyfile": "keyFile",
    "key": "keyFile",
    "cafile": "caFile",
    "ca": "caFile",
    "secure": "secure",
    "servername": "serverName",
}


def _tls(md: dict[str, Any], key: str, *, client: bool) -> dict[str, Any] | None:
    """Pop the TLS options out of ``md`` into a ``tls`` section (None when there are none)."""
    out: dict[str, Any] = {}
    for k in list(md):
        name = _TLS_KEYS.get(k.removeprefix("tls."))
        if name is None or (not client and name in ("secure", "serverName")):
            continue
        value = md.pop(k)
        if name == "secure":
            text = str(value).lower()
            if text not in ("true", "false", "1", "0", "t", "f"):
                raise ConfigError(
                    f"secure={value} is not a boolean", fix="use secure=true", key=f"{key}.{k}"
                )
            value = text in ("true", "1", "t")
        out.setdefault(name, value)
    return out or None


def _service(url: str, index: int, name: str, chain: str | None) -> dict[str, Any]:
    key = f"-L[{index}]"
    scheme, userinfo, host, path, _, pairs = _split(url, key, "auto")
    handler, listener = _scheme_pair(scheme, (HANDLERS, "auto"), (LISTENERS, "tcp"))
    md = _query(pairs, key)
    auth = _auth(userinfo, md, key)
    selector = _selector(md, key)
    tls = _tls(md, key, client=False)
    _drop_consumed(md, _SERVICE_CONSUMED, key, also_prefix="limiter")
    targets = [t for t in path.strip("/").split(",") if t] if path.strip("/") else []
    if len(targets) > MAX_TARGETS:
        raise ConfigError("too many targets", fix=f"use at most {MAX_TARGETS}", key=key)
    if targets and handler != "relay":
        handler = (
            listener
            if listener in {"tcp", "udp", "rtcp", "rudp", "tun", "tap", "dns"}
            else "forward"
        )
    svc: dict[str, Any] = {
        "name": name,
        "addr": host,
        "handler": {"type": handler, "metadata": dict(md)},
        "listener": {"type": listener, "metadata": dict(md)},
        "metadata": dict(md),
    }
    if auth is not None:
        svc["handler"]["auth"] = auth
    if tls is not None:
        svc["listener"]["tls"] = tls
    if targets:
        fwd: dict[str, Any] = {
            "nodes": [{"name": f"target-{i}", "addr": unquote(t)} for i, t in enumerate(targets)]
        }
        if selector is not None:
            fwd["selector"] = selector
        svc["forwarder"] = fwd
    if chain is not None:
        svc["listener" if listener in ("rtcp", "rudp") else "handler"]["chain"] = chain
    return svc


def _hop(url: str, index: int) -> dict[str, Any]:
    key = f"-F[{index}]"
    scheme, userinfo, hosts, _, _, pairs = _split(url, key, "auto")
    connector, dialer = _scheme_pair(scheme, (CONNECTORS, "http"), (DIALERS, "tcp"))
    md = _query(pairs, key)
    auth = _auth(userinfo, md, key)
    selector = _selector(md, key)
    tls = _tls(md, key, client=True)
    _drop_consumed(md, _NODE_CONSUMED, key)
    addrs = hosts.split(",")
    if len(addrs) > MAX_TARGETS:
        raise ConfigError("too many nodes", fix=f"use at most {MAX_TARGETS}", key=key)
    nodes = []
    for i, addr in enumerate(addrs):
        conn: dict[str, Any] = {"type": connector, "metadata": dict(md)}
        if auth is not None:
            conn["auth"] = auth
        dial: dict[str, Any] = {"type": dialer, "metadata": dict(md)}
        if tls is not None:
            dial["tls"] = dict(tls)
        nodes.append({"name": f"node-{i}", "addr": addr, "connector": conn, "dialer": dial})
    hop: dict[str, Any] = {"name": f"hop-{index}", "nodes": nodes}
    if selector is not None:
        hop["selector"] = selector
    return hop
