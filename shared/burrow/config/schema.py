"""The configuration schema shared by every front door (docs/configuration.md, Front doors
and Sections and keys).

Field names are spelled as gost spells them in YAML (camelCase where gost has it), so Burrow
TOML and gost YAML use the same keys. ``schema_decode.decode`` turns plain parsed data (from
TOML, YAML, JSON or the command-line translator) into a ``Config``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

import msgspec

from .limits import Limits

Duration = Annotated[float, msgspec.Meta(ge=0, extra={"duration": True})]
Metadata = Annotated[dict[str, Any], msgspec.Meta(extra={"metadata": True})]


class _Base(
    msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True, omit_defaults=True
):
    pass


class Auth(_Base, frozen=True, kw_only=True):
    """A single user: handler ``auth`` (server) or connector ``auth`` (client/visitor)."""

    username: str = ""
    password: str = ""


class Selector(_Base, frozen=True, kw_only=True):
    """Node selection strategy of a forwarder or hop."""

    strategy: str = "round"
    maxFails: int = 1
    failTimeout: Duration = 10.0


class Handler(_Base, frozen=True, kw_only=True):
    """What a service does with each accepted connection."""

    type: str
    chain: str | None = None
    auth: Auth | None = None
    auther: str | None = None
    authers: list[str] = msgspec.field(default_factory=list)
    metadata: Metadata = msgspec.field(default_factory=dict)


class TLSSettings(_Base, frozen=True, kw_only=True):
    """``listener.tls`` / ``dialer.tls``: certificate files and verification (gost's names)."""

    certFile: str = ""
    keyFile: str = ""
    caFile: str = ""
    secure: bool = False
    serverName: str = ""


class Listener(_Base, frozen=True, kw_only=True):
    """How a service accepts connections (rtcp/rudp: through ``chain``)."""

    type: str = "tcp"
    chain: str | None = None
    tls: TLSSettings | None = None
    metadata: Metadata = msgspec.field(default_factory=dict)


class NodeFilter(_Base, frozen=True, kw_only=True):
    """HEAD's node filter; folded into ForwardNode.host/protocol/path on load."""

    host: str | None = None
    protocol: str | None = None
    path: str | None = None


class NodeHTTP(_Base, frozen=True, kw_only=True):
    """HTTP rewrite settings of a forwarder node."""

    host: str | None = None
    header: dict[str, str] = msgspec.field(default_factory=dict)


class NodeTLS(_Base, frozen=True, kw_only=True):
    """TLS towards a forwarder node."""

    serverName: str | None = None
    secure: bool = False


class ForwardNode(_Base, frozen=True, kw_only=True):
    """A forwarder target: a local service (client) or a virtual host name (visitor)."""

    name: str = ""
    addr: str = ""
    host: str | None = None
    protocol: str | None = None
    path: str | None = None
    network: str | None = None
    http: NodeHTTP | None = None
    tls: NodeTLS | None = None
    filter: NodeFilter | None = None


class Forwarder(_Base, frozen=True, kw_only=True):
    """A service's target nodes."""

    selector: Selector | None = None
    nodes: list[ForwardNode] = msgspec.field(default_factory=list)


class Service(_Base, frozen=True, kw_only=True):
    """One listening service: listener + handler (+ forwarder)."""

    name: str
    addr: str = ""
    handler: Handler
    listener: Listener | None = None
    forwarder: Forwarder | None = None
    metadata: Metadata = msgspec.field(default_factory=dict)


class Connector(_Base, frozen=True, kw_only=True):
    """The protocol spoken to a chain node (relay or tunnel for Burrow)."""

    type: str
    auth: Auth | None = None
    metadata: Metadata = msgspec.field(default_factory=dict)


class Dialer(_Base, frozen=True, kw_only=True):
    """The transport used to reach a chain node."""

    type: str = "tcp"
    tls: TLSSettings | None = None
    metadata: Metadata = msgspec.field(default_factory=dict)


class ChainNode(_Base, frozen=True, kw_only=True):
    """A server reachable through a hop."""

    name: str = ""
    addr: str
    connector: Connector | None = None
    dialer: Dialer | None = None


class Hop(_Base, frozen=True, kw_only=True):
    """One hop of a chain: a set of alternative nodes."""

    name: str = ""
    selector: Selector | None = None
    nodes: list[ChainNode] = msgspec.field(default_factory=list)


class Chain(_Base, frozen=True, kw_only=True):
    """A named route to a server, hop by hop."""

    name: str
    hops: list[Hop] = msgspec.field(default_factory=list)


class IngressRule(_Base, frozen=True, kw_only=True):
    """hostname -> endpoint (a tunnel UUID, ``$``-prefixed when private for this rule)."""

    hostname: str = ""
    endpoint: str = ""


class IngressFile(_Base, frozen=True, kw_only=True):
    """Rules file: one ``hostname endpoint`` pair per line, ``#`` comments."""

    path: str


class Ingress(_Base, frozen=True, kw_only=True):
    """A named rule set mapping host names to tunnels."""

    name: str
    rules: list[IngressRule] = msgspec.field(default_factory=list)
    file: IngressFile | None = None
    reload: Duration | None = None


class Auther(_Base, frozen=True, kw_only=True):
    """A named set of users."""

    name: str
    auths: list[Auth] = msgspec.field(default_factory=list)


class TunnelAuth(_Base, frozen=True, kw_only=True):
    """Burrow's own per-tunnel credentials (gost has none): who may BIND, who may CONNECT."""

    id: str
    bind: Auth | None = None
    connect: Auth | None = None
    # Only this relay/tunnel service; None = every one in the config.
    service: str | None = None


class TunnelAuthSettings(_Base, frozen=True, kw_only=True):
    """Where more [[tunnels]] entries live, and whether a tunnel without one is refused."""

    file: str | None = None
    required: bool = False


class ClusterSettings(_Base, frozen=True, kw_only=True):
    """``[burrow.cluster]``: this node's place in a Redis-backed cluster (docs/cluster.md)."""

    # redis://, rediss:// or unix:// URL of the shared Redis; the cluster is off when unset.
    redis: str | None = None
    # This node's name, unique in the cluster (Redis keys and Gost-Forwarded-Node carry it).
    node: str | None = None
    # host:port of this node's relay port as the other nodes reach it; forwards arrive there.
    advertise: str | None = None
    # The shared cluster secret (or a file holding it): a forward without it is refused.
    secret: str | None = None
    secret_file: str | None = None
    # host:port of a cluster-internal listener that takes gost nodes' forwards (HTTP with
    # Gost-Forwarded-Node, TLS replay, relay CONNECT) without a credential, as gost sends them;
    # firewall it to the cluster. It is the address this node registers for gost nodes to dial.
    internal: str | None = None
    # host:port where this node serves gost's SD HTTP plugin API (gost servers' ``sds`` with
    # ``plugin: {type: http}``), backed by the cluster's Redis; off when unset.
    sd_listen: str | None = None
    # Bearer token that API requires (gost's plugin ``token``); required off loopback.
    sd_token: str | None = None
    # Renew period of this node's Redis entries; entries older than 2 x ttl are ignored.
    ttl: Annotated[float, msgspec.Meta(ge=1, le=3600, extra={"duration": True})] = 15.0


class BurrowSettings(_Base, frozen=True, kw_only=True):
    """What gost has no key for: process and runtime settings."""

    workers: Annotated[int, msgspec.Meta(ge=1, le=1024)] | None = None
    runtime_dir: str | None = None
    # The admin endpoint (metrics, JSON API): host:port, off when unset (burrow.config.admin).
    admin: str | None = None
    admin_token: str | None = None
    admin_token_file: str | None = None
    admin_metrics_path: str | None = None
    log_level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    log_format: Literal["text", "json"] = "text"
    # Where every process logs: "stderr" (default), "stdout", "none" or a file path (appended).
    log_output: str | None = None
    # One line per finished visitor connection: true (every server service) or service names.
    access_log: bool | list[str] = False
    # Microseconds a worker keeps polling after I/O before it sleeps (burrow.net.busypoll); 0 = off.
    busy_poll_us: Annotated[int, msgspec.Meta(ge=0, le=10_000)] = 0
    # Seconds SIGTERM/SIGINT lets in-flight connections finish before closing them.
    grace: Duration = 10.0
    limits: Limits = msgspec.field(default_factory=Limits)
    tunnel_auth: TunnelAuthSettings = msgspec.field(default_factory=TunnelAuthSettings)
    cluster: ClusterSettings = msgspec.field(default_factory=ClusterSettings)


class Config(_Base, frozen=True, kw_only=True):
    """A whole configuration, whichever front door it came through."""

    services: list[Service] = msgspec.field(default_factory=list)
    chains: list[Chain] = msgspec.field(default_factory=list)
    ingresses: list[Ingress] = msgspec.field(default_factory=list)
    authers: list[Auther] = msgspec.field(default_factory=list)
    tunnels: list[TunnelAuth] = msgspec.field(default_factory=list)
    burrow: BurrowSettings = msgspec.field(default_factory=BurrowSettings)


def line_for(lines: Mapping[str, int], key: str | None) -> int | None:
    """Line of ``key`` (a dotted path) or of its nearest ancestor that has one."""
    path = (key or "").lower()
    while path:
        if path in lines:
            return lines[path]
        cut = max(path.rfind("."), path.rfind("["))
        path = path[:cut] if cut > 0 else ""
    return None
