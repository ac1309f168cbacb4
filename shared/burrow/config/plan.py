"""Typed service plans: what the worker runs and what the supervisor binds.

``build_plans`` turns a Config into one plan per service, refusing (ConfigError, with the key
path and a fix) anything Burrow cannot run. The three tunnel roles (tunnel-mode.md §1):

* RelayServerPlan  - handler relay|tunnel on a TCP listener (+ entry points, ingress rules);
* TunnelClientPlan - rtcp/rudp whose listener chain ends in a relay|tunnel connector with an ID;
* VisitorPlan      - tcp/udp whose handler chain ends in such a connector (private entry point).

Addresses keep an empty host as written (``:8443``): for listeners it means every interface,
for dialers (chain nodes, client targets) it means 127.0.0.1, as gost dials localhost then.
Ingress ``file`` rules are read here, once, so workers receive plain rules. The plan types are
frozen msgspec Structs: the supervisor sends them to workers as msgpack (config/planset.py).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Literal

import msgspec

from burrow.common.ids import InvalidIdError, TunnelId, parse_uuid

from .errors import ConfigError
from .metadata import (
    MUX_DEFAULTS,
    Endpoint,
    MuxOptions,
    get_bool,
    get_duration,
    get_int,
    get_str,
    mux_options,
    parse_endpoint,
)
from .notices import ConfigWarning, emit
from .schema import Auther, Chain, Config, Ingress, Service

__all__ = [
    "DEFAULT_CLIENT_SNIFF_TIMEOUT", "DEFAULT_CONNECT_TIMEOUT", "DEFAULT_READ_TIMEOUT",
    "DEFAULT_SNIFF_TIMEOUT", "DEFAULT_UDP_READ_BUFFER", "DEFAULT_UDP_TTL", "LISTEN_BACKLOG",
    "MUX_DEFAULTS", "Dialect", "Endpoint", "ListenSpec", "MuxOptions", "RelayServerPlan",
    "ServerNode", "ServicePlan", "TargetNode", "TunnelClientPlan", "VisitorPlan", "build_plans",
    "listen_specs", "mux_options", "parse_endpoint",
]  # fmt: skip


Dialect = Literal["relay", "tunnel"]
Network = Literal["tcp", "udp"]

MAX_INGRESS_FILE_BYTES = 16 * 1024 * 1024
# Every default a plan applies is settled here, once; the workers read the plan's value.
# gost's rc-era relay handler waits forever for the request; a peer that connects and stays
# silent would then hold a socket and a task for good, so Burrow bounds it by default (0 or
# absent = this default, as in gost HEAD).
DEFAULT_READ_TIMEOUT = 15.0
# Sniffing reads the visitor's first bytes; never without a deadline (gost: none). On the
# server's entry points and a target-less visitor the host is needed to route at all, so wait
# long enough for a slow visitor.
DEFAULT_SNIFF_TIMEOUT = 10.0
# A tunnel client sniffs only to pick a target node and falls back to the stream header's
# host, so it waits briefly: a server-speaks-first protocol (ssh) sends nothing to sniff.
DEFAULT_CLIENT_SNIFF_TIMEOUT = 2.0
# CONNECT/BIND handshake with the tunnel server (gost: none).
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_UDP_TTL = 5.0
# One whole datagram fits the 2-byte length framing (tunnel-mode.md §8); gost's 1024 truncates.
DEFAULT_UDP_READ_BUFFER = 65535
TUNNEL_ROLES = ("relay", "tunnel", "rtcp", "rudp", "tcp", "udp")
_WILDCARDS = frozenset({"", "0.0.0.0", "::"})


class TargetNode(msgspec.Struct, frozen=True):
    """A forwarder node: a local target (client) or a virtual host (visitor)."""

    name: str
    addr: str
    host: str | None
    protocol: str | None
    network: str


class RelayServerPlan(msgspec.Struct, frozen=True):
    """Tunnel server: relay port, entry points, ingress rules."""

    name: str
    listen: Endpoint
    dialect: Dialect
    entrypoints: tuple[Endpoint, ...]
    ingress_rules: tuple[tuple[str, str], ...]
    direct: bool
    auths: tuple[tuple[str, str], ...]
    mux: MuxOptions
    mux_version_override: int | None
    read_timeout: float
    nodelay: bool
    proxy_enabled: bool
    sniff_timeout: float


class ServerNode(msgspec.Struct, frozen=True):
    """The tunnel server a client or visitor dials: the chain's (single) last hop node."""

    addr: Endpoint
    dialect: Dialect
    tunnel_id: TunnelId | None
    weight: int
    auth: tuple[str, str] | None
    mux: MuxOptions
    connect_timeout: float
    nodelay: bool
    dialer: str


class TunnelClientPlan(msgspec.Struct, frozen=True):
    """rtcp/rudp service publishing local targets through a tunnel."""

    name: str
    network: Network
    server: ServerNode
    tunnel_id: TunnelId
    nodes: tuple[TargetNode, ...]
    sniffing: bool
    sniffing_timeout: float


class VisitorPlan(msgspec.Struct, frozen=True):
    """tcp/udp private entry point reaching a tunnel by ID."""

    name: str
    network: Network
    listen: Endpoint
    server: ServerNode
    tunnel_id: TunnelId
    targets: tuple[TargetNode, ...]
    sniffing: bool
    sniffing_timeout: float
    keepalive: bool
    ttl: float
    read_buffer_size: int


ServicePlan = RelayServerPlan | TunnelClientPlan | VisitorPlan


# listen() backlog of every listening socket: the supervisor's listen() and the worker's, since
# uvloop's create_server(sock=...) calls listen() again and would otherwise shrink it.
LISTEN_BACKLOG = 1024


class ListenSpec(msgspec.Struct, frozen=True):
    """One socket the supervisor must bind."""

    service: str
    role: Literal["relay", "entrypoint", "visitor"]
    network: Network
    endpoint: Endpoint


def build_plans(
    config: Config, *, source: str | None = None, warnings: list[ConfigWarning] | None = None
) -> list[ServicePlan]:
    """One plan per service; ConfigError (file = ``source``) on anything Burrow cannot run.

    Settings that are accepted but have no effect go to ``warnings`` (logged when None).
    """
    try:
        return _Builder(config, warnings, source).build()
    except ConfigError as exc:
        raise exc.located(file=source) from None


def listen_specs(plans: Sequence[ServicePlan]) -> list[ListenSpec]:
    """Sockets to bind, in plan order: relay port, then its entry points; visitors."""
    specs: list[ListenSpec] = []
    for plan in plans:
        if isinstance(plan, RelayServerPlan):
            specs.append(ListenSpec(plan.name, "relay", "tcp", plan.listen))
            specs.extend(ListenSpec(plan.name, "entrypoint", "tcp", ep) for ep in plan.entrypoints)
        elif isinstance(plan, VisitorPlan):
            specs.append(ListenSpec(plan.name, "visitor", plan.network, plan.listen))
    return specs


def _unique(
    items: Sequence[Service | Chain | Ingress | Auther], kind: str, section: str
) -> dict[str, int]:
    index: dict[str, int] = {}
    for i, item in enumerate(items):
        name = item.name
        if name in index:
            raise ConfigError(
                f"{kind} name {name!r} is used twice (also {section}[{index[name]}])",
                fix=f"give each {kind} its own name",
                key=f"{section}[{i}].name",
            )
        index[name] = i
    return index


class _Builder:
    def __init__(
        self, config: Config, warnings: list[ConfigWarning] | None, source: str | None
    ) -> None:
        self.config = config
        self.warnings = warnings
        self.source = source
        self.services = _unique(config.services, "service", "services")
        self.chains = _unique(config.chains, "chain", "chains")
        self.ingresses = _unique(config.ingresses, "ingress", "ingresses")
        self.authers = _unique(config.authers, "auther", "authers")

    def build(self) -> list[ServicePlan]:
        if not self.config.services:
            raise ConfigError(
                "there are no services",
                key="services",
                fix="add a service (services: in YAML, [[services]] in TOML) or pass -L",
            )
        for k, ing in enumerate(self.config.ingresses):
            for r, rule in enumerate(ing.rules):
                _rule_checked(rule.hostname, rule.endpoint, f"ingresses[{k}].rules[{r}]")
        plans: list[ServicePlan] = []
        for i, svc in enumerate(self.config.services):
            kind = svc.handler.type.lower()
            if kind in ("relay", "tunnel"):
                plans.append(self.server(i, svc, "relay" if kind == "relay" else "tunnel"))
            elif kind in ("rtcp", "rudp"):
                plans.append(self.client(i, svc, "tcp" if kind == "rtcp" else "udp"))
            elif kind in ("tcp", "udp"):
                plans.append(self.visitor(i, svc, "tcp" if kind == "tcp" else "udp"))
            else:
                raise ConfigError(
                    f"service {svc.name!r} has handler type {svc.handler.type!r}; Burrow only runs "
                    "tunnel roles",
                    fix=f"use one of: {', '.join(TUNNEL_ROLES)} (or run gost for it)",
                    key=f"services[{i}].handler.type",
                )
        self.check_addresses(plans)
        return plans

    def listener_type(self, i: int, svc: Service, want: str) -> None:
        got = (svc.listener.type if svc.listener else want).lower()
        if got != want:
            raise ConfigError(
                f"service {svc.name!r} pairs a {svc.handler.type} handler with a {got} listener",
                fix=f'set listener type to "{want}"',
                key=f"services[{i}].listener.type",
            )

    def server(self, i: int, svc: Service, dialect: Dialect) -> RelayServerPlan:
        where = f"services[{i}]"
        self.listener_type(i, svc, "tcp")
        if svc.forwarder is not None and svc.forwarder.nodes:
            raise ConfigError(
                "relay forward mode (a server with targets) is not supported",
                fix="remove the forwarder (the /target part of -L)",
                key=f"{where}.forwarder",
            )
        if svc.handler.chain:
            # gost attaches -F to every -L, so a server started next to visitors has one: harmless.
            emit(
                self.warnings,
                ConfigWarning(
                    "unknown",
                    "a tunnel server does not use a chain; ignored",
                    "remove handler.chain (on the command line: start the server without -F)",
                    key=f"{where}.handler.chain",
                    file=self.source,
                ),
            )
        md = svc.handler.metadata
        mdw = f"{where}.handler.metadata"
        entrypoints: list[Endpoint] = []
        ep = get_str(md, "entrypoint", where=mdw)
        if ep:
            entrypoints.append(parse_endpoint(ep, key=f"{mdw}.entrypoint"))
        ingress = get_str(md, "ingress", where=mdw)
        extra = md.get("entrypoints", [])
        for j, item in enumerate(extra if isinstance(extra, list) else [extra]):
            key = f"{mdw}.entrypoints[{j}]"
            addr = item.get("addr") if isinstance(item, dict) else item
            if not isinstance(addr, str):
                raise ConfigError(
                    "entry point without an address", fix="give each entry an addr", key=key
                )
            own = item.get("ingress") if isinstance(item, dict) else None
            if own and own != ingress:
                raise ConfigError(
                    "per-entry-point ingress is not supported",
                    fix="use the handler's ingress for every entry point",
                    key=f"{key}.ingress",
                )
            entrypoints.append(parse_endpoint(addr, key=key))
        mux, version = mux_options(dialect, md, where=mdw)
        read_timeout = get_duration(md, "readtimeout", default=DEFAULT_READ_TIMEOUT, where=mdw)
        return RelayServerPlan(
            name=svc.name,
            listen=parse_endpoint(svc.addr, key=f"{where}.addr"),
            dialect=dialect,
            entrypoints=tuple(entrypoints),
            ingress_rules=self.rules(ingress, md, mdw),
            direct=get_bool(md, "tunnel.direct", where=mdw),
            auths=self.auths(i, svc),
            mux=mux,
            mux_version_override=version,
            read_timeout=read_timeout or DEFAULT_READ_TIMEOUT,
            nodelay=get_bool(md, "nodelay", where=mdw),
            proxy_enabled=get_bool(md, "relay.proxy", where=mdw),
            sniff_timeout=get_duration(md, "sniffing.timeout", where=mdw) or DEFAULT_SNIFF_TIMEOUT,
        )

    def rules(
        self, name: str | None, md: dict[str, object], mdw: str
    ) -> tuple[tuple[str, str], ...]:
        out: list[tuple[str, str]] = []
        if name is not None:
            if name not in self.ingresses:
                known = ", ".join(self.ingresses) or "none defined"
                raise ConfigError(
                    f"no ingress named {name!r}",
                    key=f"{mdw}.ingress",
                    fix=f"define it under ingresses or fix the name (known: {known})",
                )
            k = self.ingresses[name]
            ing = self.config.ingresses[k]
            out.extend((rule.hostname, rule.endpoint) for rule in ing.rules)  # checked in build
            if ing.file is not None:
                out.extend(_rules_file(ing.file.path, f"ingresses[{k}].file.path"))
            return tuple(out)
        return _shorthand(get_str(md, "tunnel", where=mdw) or "", f"{mdw}.tunnel")

    def auths(self, i: int, svc: Service) -> tuple[tuple[str, str], ...]:
        names = ([svc.handler.auther] if svc.handler.auther else []) + list(svc.handler.authers)
        if not names:
            auth = svc.handler.auth
            return ((auth.username, auth.password),) if auth is not None else ()
        users: list[tuple[str, str]] = []
        for name in names:
            if name not in self.authers:
                raise ConfigError(
                    f"no auther named {name!r}",
                    key=f"services[{i}].handler.auther",
                    fix="define it under authers or fix the name",
                )
            users.extend(
                (a.username, a.password) for a in self.config.authers[self.authers[name]].auths
            )
        return tuple(users)

    def client(self, i: int, svc: Service, network: Network) -> TunnelClientPlan:
        where = f"services[{i}]"
        kind = svc.handler.type.lower()
        self.listener_type(i, svc, kind)
        chain = svc.listener.chain if svc.listener else None
        if not chain:
            fix = (
                "move handler.chain to listener.chain"
                if svc.handler.chain
                else "set listener.chain to a chain whose node has a relay connector with "
                "tunnelID (or pass -F)"
            )
            raise ConfigError(
                f"{kind} service {svc.name!r} has no listener chain",
                fix=fix,
                key=f"{where}.listener.chain",
            )
        server, tid = self.server_node(chain, f"{where}.listener.chain")
        nodes = self.targets(i, svc, network, visitor=False)
        if not nodes:
            raise ConfigError(
                f"{kind} service {svc.name!r} has no forwarder nodes",
                key=f"{where}.forwarder",
                fix=f"add forwarder nodes (local targets), e.g. -L {kind}://:0/127.0.0.1:80",
            )
        md, mdw = svc.handler.metadata, f"{where}.handler.metadata"
        return TunnelClientPlan(
            name=svc.name,
            network=network,
            server=server,
            tunnel_id=tid,
            nodes=nodes,
            sniffing=network == "tcp" and get_bool(md, "sniffing", where=mdw),
            sniffing_timeout=get_duration(md, "sniffing.timeout", where=mdw)
            or DEFAULT_CLIENT_SNIFF_TIMEOUT,
        )

    def visitor(self, i: int, svc: Service, network: Network) -> VisitorPlan:
        where = f"services[{i}]"
        self.listener_type(i, svc, network)
        if not svc.handler.chain:
            raise ConfigError(
                f"{network} service {svc.name!r} has no handler chain; without one it is a "
                "plain port forward, not a tunnel visitor",
                key=f"{where}.handler.chain",
                fix="set handler.chain to a chain whose node has a relay connector with tunnelID",
            )
        server, tid = self.server_node(svc.handler.chain, f"{where}.handler.chain")
        md, mdw = svc.handler.metadata, f"{where}.handler.metadata"
        sniffing = network == "tcp" and get_bool(md, "sniffing", where=mdw)
        targets = self.targets(i, svc, network, visitor=True)
        if not targets and not sniffing:
            raise ConfigError(
                f"visitor {svc.name!r} names no target host",
                key=f"{where}.forwarder",
                fix="add a forwarder node with the ingress host name (tcp://:2222/ssh.example:0)"
                + (" or sniffing=true" if network == "tcp" else ""),
            )
        lmd = svc.listener.metadata if svc.listener else {}
        lmdw = f"{where}.listener.metadata"
        buffer = get_int(lmd, "readbuffersize", "udp.buffersize", where=lmdw)
        if buffer < 0 or buffer > 65535:
            raise ConfigError(
                f"read buffer {buffer} is out of range",
                fix="use 1 to 65535",
                key=f"{lmdw}.readbuffersize",
            )
        return VisitorPlan(
            name=svc.name,
            network=network,
            listen=parse_endpoint(svc.addr, key=f"{where}.addr"),
            server=server,
            tunnel_id=tid,
            targets=targets,
            sniffing=sniffing,
            sniffing_timeout=get_duration(md, "sniffing.timeout", where=mdw)
            or DEFAULT_SNIFF_TIMEOUT,
            keepalive=get_bool(lmd, "keepalive", where=lmdw),
            ttl=get_duration(lmd, "ttl", "keepalive.ttl", where=lmdw) or DEFAULT_UDP_TTL,
            read_buffer_size=buffer or DEFAULT_UDP_READ_BUFFER,
        )

    def targets(
        self, i: int, svc: Service, network: Network, *, visitor: bool
    ) -> tuple[TargetNode, ...]:
        out: list[TargetNode] = []
        for j, node in enumerate(svc.forwarder.nodes if svc.forwarder else []):
            key = f"services[{i}].forwarder.nodes[{j}]"
            # A visitor's target is a virtual host name; gost appends ":0" when the port is missing.
            ep = parse_endpoint(node.addr, key=f"{key}.addr", default_port=0 if visitor else None)
            if visitor and not ep.host:
                raise ConfigError(
                    "visitor target has no host name",
                    key=f"{key}.addr",
                    fix="use the host name of the server's ingress rule, e.g. ssh.example:0",
                )
            net = (node.network or network).lower()
            if net not in ("tcp", "udp"):
                raise ConfigError(
                    f"network {net!r} is not supported", fix="use tcp or udp", key=f"{key}.network"
                )
            out.append(
                TargetNode(node.name or f"target-{j}", str(ep), node.host, node.protocol, net)
            )
        return tuple(out)

    def server_node(self, name: str, ref: str) -> tuple[ServerNode, TunnelId]:
        if name not in self.chains:
            known = ", ".join(self.chains) or "none defined"
            raise ConfigError(
                f"no chain named {name!r}",
                key=ref,
                fix=f"define it under chains or fix the name (known: {known})",
            )
        c = self.chains[name]
        chain: Chain = self.config.chains[c]
        where = f"chains[{c}]"
        if len(chain.hops) != 1:
            raise ConfigError(
                f"chain {name!r} has {len(chain.hops)} hops; Burrow supports exactly one",
                fix="use one hop whose node is the tunnel server",
                key=f"{where}.hops",
            )
        if len(chain.hops[0].nodes) != 1:
            raise ConfigError(
                f"chain {name!r} has {len(chain.hops[0].nodes)} nodes; Burrow supports exactly "
                "one per hop",
                fix="run one service per tunnel server",
                key=f"{where}.hops[0].nodes",
            )
        node = chain.hops[0].nodes[0]
        nk = f"{where}.hops[0].nodes[0]"
        conn = node.connector
        if conn is None or conn.type.lower() not in ("relay", "tunnel"):
            raise ConfigError(
                f"connector {conn.type if conn else None!r} cannot reach a tunnel server",
                fix="use connector type relay (gost rc releases) or tunnel (gost v3.0.0+)",
                key=f"{nk}.connector" + (".type" if conn else ""),
            )
        dialect: Dialect = "relay" if conn.type.lower() == "relay" else "tunnel"
        dialer = (node.dialer.type if node.dialer else "tcp").lower()
        if dialer != "tcp":
            raise ConfigError(
                f"dialer {dialer!r} is not supported yet",
                fix="use dialer type tcp",
                key=f"{nk}.dialer.type",
            )
        md, mdw = conn.metadata, f"{nk}.connector.metadata"
        text = get_str(md, "tunnelid", "tunnel.id", where=mdw)
        idkey = f"{mdw}.{'tunnelid' if 'tunnelid' in md else 'tunnel.id'}"
        if text is None:
            raise ConfigError(
                "no tunnel ID: Burrow only runs tunnel clients and visitors",
                key=mdw,
                fix="add tunnelID: <uuid> to the connector metadata (-F ...?tunnel.id=<uuid>)",
            )
        try:
            uuid = parse_uuid(text)
        except InvalidIdError:
            raise ConfigError(
                f"{text!r} is not a UUID",
                key=idkey,
                fix="use a UUID such as 4d21094e-b74c-4916-86c1-d9fa36ea677b",
            ) from None
        if not any(uuid):
            raise ConfigError(
                "the all-zero tunnel ID is not a tunnel", key=idkey, fix="use a random UUID"
            )
        weight = get_int(md, "tunnel.weight", where=mdw)
        if not 0 <= weight <= 255:
            raise ConfigError(
                f"weight {weight} is out of range",
                fix="use 1 to 255 (255 = exclusive)",
                key=f"{mdw}.tunnel.weight",
            )
        tid = TunnelId(uuid, weight=weight)
        mux, _ = mux_options(dialect, md, where=mdw)
        auth = (conn.auth.username, conn.auth.password) if conn.auth is not None else None
        server = ServerNode(
            addr=parse_endpoint(node.addr, key=f"{nk}.addr"),
            dialect=dialect,
            tunnel_id=tid,
            weight=weight,
            auth=auth,
            mux=mux,
            connect_timeout=get_duration(md, "connecttimeout", where=mdw)
            or DEFAULT_CONNECT_TIMEOUT,
            nodelay=get_bool(md, "nodelay", where=mdw),
            dialer=dialer,
        )
        return server, tid

    def check_addresses(self, plans: list[ServicePlan]) -> None:
        seen: list[tuple[ListenSpec, str]] = []
        for spec in listen_specs(plans):
            i = self.services[spec.service]
            key = (
                f"services[{i}].handler.metadata.entrypoint"
                if spec.role == "entrypoint"
                else f"services[{i}].addr"
            )
            ep = spec.endpoint
            for other, _ in seen:
                o = other.endpoint
                if (
                    ep.port
                    and other.network == spec.network
                    and o.port == ep.port
                    and (o.host == ep.host or o.host in _WILDCARDS or ep.host in _WILDCARDS)
                ):
                    raise ConfigError(
                        f"{spec.network} address {ep} is also used by {other.service!r} "
                        f"({other.role})",
                        fix="give each listener its own port",
                        key=key,
                    )
            seen.append((spec, key))


def _rule_checked(hostname: str, endpoint: str, key: str) -> tuple[str, str]:
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


def _shorthand(text: str, key: str) -> tuple[tuple[str, str], ...]:
    """The ``tunnel=host:uuid,host:uuid`` shorthand; a malformed entry is an error."""
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for entry in text.split(","):
        entry = entry.strip()
        if not entry:
            continue  # a trailing comma
        host, sep, endpoint = entry.partition(":")
        host, endpoint = host.strip(), endpoint.strip()
        if not sep or not host or not endpoint:
            raise ConfigError(
                f"tunnel entry {entry!r} is not host:uuid",
                key=key,
                fix="write tunnel=example.com:<uuid>[,other.example:<uuid>...]",
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


def _rules_file(path: str, key: str) -> list[tuple[str, str]]:
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
