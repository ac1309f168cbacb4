"""Plans of the tunnel-client side: rtcp/rudp tunnel clients and tcp/udp visitors.

``ClientSidePlans`` is a mixin of plan.py's builder, which owns the state declared here.
"""

from __future__ import annotations

from .errors import ConfigError
from .metadata import get_bool, get_duration, get_int, parse_endpoint
from .notices import ConfigWarning, emit
from .plan_chain import server_node, target_nodes
from .plan_security import client_proxy_protocol
from .plan_types import (
    DEFAULT_CLIENT_SNIFF_TIMEOUT,
    DEFAULT_SNIFF_TIMEOUT,
    DEFAULT_UDP_READ_BUFFER,
    DEFAULT_UDP_TTL,
    Network,
    TunnelClientPlan,
    VisitorPlan,
)
from .schema import Config, Service


class ClientSidePlans:
    """``client`` and ``visitor`` plans from one service each; mixed into plan.py's builder."""

    # Set up by the builder's __init__ (plan.py).
    config: Config
    warnings: list[ConfigWarning] | None
    source: str | None
    chains: dict[str, int]

    def listener_type(self, i: int, svc: Service, want: str) -> None:
        raise NotImplementedError  # the builder's

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
        server, tid = server_node(self.config, self.chains, chain, f"{where}.listener.chain")
        nodes = target_nodes(i, svc, network, visitor=False)
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
            proxy_protocol=self.client_proxy(network, md, mdw),
        )

    def client_proxy(self, network: Network, md: dict[str, object], mdw: str) -> int:
        version = client_proxy_protocol(md, mdw)
        if version and network == "udp":
            # As in gost: the PROXY protocol is not sent over UDP.
            emit(
                self.warnings,
                ConfigWarning(
                    "unknown",
                    "proxyProtocol is TCP only; an rudp client ignores it",
                    "remove proxyProtocol from this service",
                    key=f"{mdw}.proxyprotocol",
                    file=self.source,
                ),
            )
            return 0
        return version

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
        server, tid = server_node(
            self.config, self.chains, svc.handler.chain, f"{where}.handler.chain"
        )
        md, mdw = svc.handler.metadata, f"{where}.handler.metadata"
        sniffing = network == "tcp" and get_bool(md, "sniffing", where=mdw)
        targets = target_nodes(i, svc, network, visitor=True)
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
