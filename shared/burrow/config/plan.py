"""Service plans from a Config: one plan per service, or a ConfigError.

``build_plans`` refuses (ConfigError, with the key path and a fix) anything Burrow cannot run;
the plan types and their defaults are in plan_types.py, chain resolution in plan_chain.py,
tunnel-client and visitor plans in plan_clients.py,
ingress rules in plan_ingress.py (rules files are read there, once, so workers receive plain
rules). ``listen_specs`` lists the sockets the supervisor binds for a set of plans.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from .errors import ConfigError
from .metadata import (
    MUX_DEFAULTS,
    Endpoint,
    MuxOptions,
    get_bool,
    get_duration,
    get_str,
    mux_options,
    parse_endpoint,
)
from .notices import ConfigWarning, emit
from .plan_clients import ClientSidePlans
from .plan_entry_tls import entry_tls
from .plan_ingress import rule_checked, rules_file, shorthand_rules
from .plan_security import proxy_settings, tunnel_credentials, tunnels_file
from .plan_transport import listener_transport
from .plan_types import (
    DEFAULT_CLIENT_SNIFF_TIMEOUT,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_READ_TIMEOUT,
    DEFAULT_SNIFF_TIMEOUT,
    DEFAULT_UDP_READ_BUFFER,
    DEFAULT_UDP_TTL,
    LISTEN_BACKLOG,
    Dialect,
    ListenSpec,
    RelayServerPlan,
    ServerNode,
    ServicePlan,
    TargetNode,
    TunnelClientPlan,
    TunnelCredential,
    VisitorPlan,
)
from .schema import Auther, Chain, Config, Ingress, Service

# The plan types are re-exported for importers written before the split (plan_types.py).
__all__ = [
    "DEFAULT_CLIENT_SNIFF_TIMEOUT", "DEFAULT_CONNECT_TIMEOUT", "DEFAULT_READ_TIMEOUT",
    "DEFAULT_SNIFF_TIMEOUT", "DEFAULT_UDP_READ_BUFFER", "DEFAULT_UDP_TTL", "LISTEN_BACKLOG",
    "MUX_DEFAULTS", "Dialect", "Endpoint", "ListenSpec", "MuxOptions", "RelayServerPlan",
    "ServerNode", "ServicePlan", "TargetNode", "TunnelClientPlan", "VisitorPlan", "build_plans",
    "listen_specs", "mux_options", "parse_endpoint",
]  # fmt: skip

TUNNEL_ROLES = ("relay", "tunnel", "rtcp", "rudp", "tcp", "udp")
_WILDCARDS = frozenset({"", "0.0.0.0", "::"})


def build_plans(
    config: Config, *, source: str | None = None, warnings: list[ConfigWarning] | None = None
) -> list[ServicePlan]:
    """One plan per service; ConfigError (file = ``source``) on anything Burrow cannot run.

    Settings that are accepted but have no effect go to ``warnings`` (logged when None).
    """
    try:
        return _with_internal(config, _Builder(config, warnings, source).build())
    except ConfigError as exc:
        raise exc.located(file=source) from None


def _with_internal(config: Config, plans: list[ServicePlan]) -> list[ServicePlan]:
    """The first relay server also serves ``[burrow.cluster] internal`` (gost nodes' forwards).

    Forwards arrive on a plain-TCP relay port (they bring their own mutual TLS): a cluster
    node whose relay servers all use another transport could take none."""
    c = config.burrow.cluster
    if c.redis is None:
        return plans
    servers = [p for p in plans if isinstance(p, RelayServerPlan)]
    if servers and all(p.transport.kind != "tcp" for p in servers):
        raise ConfigError(
            f"no relay server listens on plain TCP (transport {servers[0].transport.kind}): "
            "forwards from other nodes could not arrive",
            fix="add a relay server on plain TCP (listener type tcp) and name it in advertise; "
            "forwards bring their own mutual TLS",
            key="burrow.cluster.advertise",
        )
    if c.internal is None:
        return plans
    key = "burrow.cluster.internal"
    for i, plan in enumerate(plans):
        if isinstance(plan, RelayServerPlan):
            internal = parse_endpoint(c.internal, key=key)
            plans[i] = msgspec.structs.replace(plan, internal=internal)
            return plans
    raise ConfigError(
        "internal is set but no service is a relay/tunnel server to route gost forwards with",
        fix="add a relay or tunnel server service, or remove burrow.cluster.internal",
        key=key,
    )


def listen_specs(plans: Sequence[ServicePlan]) -> list[ListenSpec]:
    """Sockets to bind, in plan order: relay port, then its entry points; visitors."""
    specs: list[ListenSpec] = []
    for plan in plans:
        if isinstance(plan, RelayServerPlan):
            specs.append(ListenSpec(plan.name, "relay", "tcp", plan.listen))
            specs.extend(ListenSpec(plan.name, "entrypoint", "tcp", ep) for ep in plan.entrypoints)
            if plan.internal is not None:
                specs.append(ListenSpec(plan.name, "internal", "tcp", plan.internal))
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


class _Builder(ClientSidePlans):
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
        self._creds: dict[str, tuple[TunnelCredential, ...]] | None = None

    def creds(self, name: str) -> tuple[TunnelCredential, ...]:
        """Per-tunnel credentials of server ``name`` ([[tunnels]] + the file), read once."""
        if self._creds is None:
            servers = {
                s.name: i
                for i, s in enumerate(self.config.services)
                if s.handler.type.lower() in ("relay", "tunnel")
            }
            path = self.config.burrow.tunnel_auth.file
            key = "burrow.tunnel_auth.file"
            extra = tunnels_file(path, key, self.warnings) if path else []
            self._creds = tunnel_credentials(self.config, servers, extra, key)
        return self._creds.get(name, ())

    def build(self) -> list[ServicePlan]:
        if not self.config.services:
            raise ConfigError(
                "there are no services",
                key="services",
                fix="add a service (services: in YAML, [[services]] in TOML) or pass -L",
            )
        for k, ing in enumerate(self.config.ingresses):
            for r, rule in enumerate(ing.rules):
                rule_checked(rule.hostname, rule.endpoint, f"ingresses[{k}].rules[{r}]")
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
        if not any(isinstance(p, RelayServerPlan) for p in plans):
            self.creds("")  # [[tunnels]] entries are still checked (a typo must not pass)
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
        lst = svc.listener
        transport = listener_transport(
            lst.type if lst else "tcp",
            lst.tls if lst else None,
            lst.metadata if lst else {},
            f"{where}.listener",
        )
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
        proxy_version, trusted = proxy_settings([svc.metadata, md], [f"{where}.metadata", mdw])
        certs, handshake_timeout = entry_tls(md, mdw)
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
            tunnel_auths=self.creds(svc.name),
            tunnel_auth_required=self.config.burrow.tunnel_auth.required,
            proxy_protocol=proxy_version,
            proxy_trusted=trusted,
            entry_tls=certs,
            entry_tls_handshake_timeout=handshake_timeout,
            transport=transport,
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
                out.extend(rules_file(ing.file.path, f"ingresses[{k}].file.path"))
            return tuple(out)
        return shorthand_rules(get_str(md, "tunnel", where=mdw) or "", f"{mdw}.tunnel")

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
