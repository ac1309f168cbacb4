"""Plan types: what the worker runs and what the supervisor binds, with every plan default.

The three tunnel roles (docs/configuration.md, role table):

* RelayServerPlan  - handler relay|tunnel on a TCP listener (+ entry points, ingress rules);
* TunnelClientPlan - rtcp/rudp whose listener chain ends in a relay|tunnel connector with an ID;
* VisitorPlan      - tcp/udp whose handler chain ends in such a connector (private entry point).

Addresses keep an empty host as written (``:8443``): for listeners it means every interface,
for dialers (chain nodes, client targets) it means 127.0.0.1, as gost dials localhost then.
The plan types are frozen msgspec Structs: the supervisor sends them to workers as msgpack
(config/planset.py). ``build_plans`` (config/plan.py) makes them.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from burrow.common.ids import TunnelId

from .metadata import MUX_DEFAULTS, Endpoint, MuxOptions
from .plan_transport import TCP_TRANSPORT, TransportPlan

__all__ = [
    "DEFAULT_CLIENT_SNIFF_TIMEOUT", "DEFAULT_CONNECT_TIMEOUT", "DEFAULT_READ_TIMEOUT",
    "DEFAULT_SNIFF_TIMEOUT", "DEFAULT_UDP_READ_BUFFER", "DEFAULT_UDP_TTL", "LISTEN_BACKLOG",
    "MUX_DEFAULTS", "Dialect", "Endpoint", "EntryCert", "ListenSpec", "MuxOptions", "Network",
    "RelayServerPlan", "ServerNode", "ServicePlan", "TargetNode", "TunnelClientPlan",
    "TunnelCredential",
    "VisitorPlan",
]  # fmt: skip


Dialect = Literal["relay", "tunnel"]
Network = Literal["tcp", "udp"]

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
# One whole datagram fits the 2-byte length framing (docs/protocol.md, UDP framing);
# gost's 1024 truncates.
DEFAULT_UDP_READ_BUFFER = 65535


class TargetNode(msgspec.Struct, frozen=True):
    """A forwarder node: a local target (client) or a virtual host (visitor)."""

    name: str
    addr: str
    host: str | None
    protocol: str | None
    network: str


class TunnelCredential(msgspec.Struct, frozen=True):
    """Per-tunnel credentials of a server (config [[tunnels]]); repr never shows passwords."""

    tunnel: str  # canonical UUID text
    bind: tuple[str, str] | None  # (username, password) a tunnel client must send, or None
    connect: tuple[str, str] | None  # the same for visitors (CONNECT), or None

    def __repr__(self) -> str:
        def show(c: tuple[str, str] | None) -> str:
            return "None" if c is None else f"({c[0]!r}, '********')"

        return f"TunnelCredential({self.tunnel!r}, bind={show(self.bind)}, connect={show(self.connect)})"


class EntryCert(msgspec.Struct, frozen=True):
    """A certificate the entry point terminates TLS with, for ``hostname`` (``*.`` allowed).

    The supervisor reads and checks the files (config/plan_entry_tls.py) and inlines the PEM
    text, so workers never read config files; repr never shows the key.
    """

    hostname: str  # lower-cased; "*.example.com" covers one label below example.com
    cert_pem: bytes
    key_pem: bytes
    source: str  # the certificate file, for log lines
    redirect: bool = False  # plain HTTP for this hostname gets a 308 to https://
    key_file: str = ""  # the key file and the config key, for errors found later
    key: str = ""

    def __repr__(self) -> str:
        return f"EntryCert({self.hostname!r}, source={self.source!r}, redirect={self.redirect})"


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
    transport: TransportPlan = TCP_TRANSPORT  # of the relay port (entry points stay plain TCP)
    tunnel_auths: tuple[TunnelCredential, ...] = ()
    # A tunnel without a [[tunnels]] entry is refused as if its password were wrong.
    tunnel_auth_required: bool = False
    # PROXY protocol on the relay port and entry points: 0 off, else accepted (v1 and v2)
    # from peers in proxy_trusted (CIDRs) only.
    proxy_protocol: int = 0
    proxy_trusted: tuple[str, ...] = ()
    # TLS termination at the entry points (docs/configuration.md, Entry-point TLS).
    entry_tls: tuple[EntryCert, ...] = ()
    entry_tls_handshake_timeout: float = 10.0
    # [burrow.cluster] internal: the listener taking gost nodes' forwards (first server only).
    internal: Endpoint | None = None


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
    transport: TransportPlan = TCP_TRANSPORT


class TunnelClientPlan(msgspec.Struct, frozen=True):
    """rtcp/rudp service publishing local targets through a tunnel."""

    name: str
    network: Network
    server: ServerNode
    tunnel_id: TunnelId
    nodes: tuple[TargetNode, ...]
    sniffing: bool
    sniffing_timeout: float
    # PROXY protocol header (1 or 2) sent to the backend before the visitor's bytes; 0 off.
    proxy_protocol: int = 0


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
    role: Literal["relay", "entrypoint", "visitor", "internal"]
    network: Network
    endpoint: Endpoint
