"""The relay port's decision as data: request -> BIND, CONNECT, proxy, or a refusal status.

Pure (docs/protocol.md, Relay header status codes): burrow.server.relay_server reads the request,
checks the credentials once (its single auth call site) and carries out what :func:`decide_relay`
answers.
"""

from __future__ import annotations

from dataclasses import dataclass

from burrow.common.ids import TunnelId
from burrow.proto.addr import Address
from burrow.proto.relay import Cmd, RelayRequest, Status
from burrow.proto.relay_features import NETWORK_UDP
from burrow.routing.ingress import Ingress


@dataclass(frozen=True, slots=True)
class RelayRefuse:
    """Answer ``status`` (no features) and close; ``reason`` goes to the log line."""

    status: Status
    reason: str


@dataclass(frozen=True, slots=True)
class RelayBind:
    """Register a tunnel connection (connector) for ``tunnel_id``."""

    tunnel_id: TunnelId
    network: str  # "tcp" | "udp"
    wire_dialect: str  # "relay" (16-byte tunnel ID) | "tunnel" (20-byte)


@dataclass(frozen=True, slots=True)
class RelayConnect:
    """Route a visitor onto ``tunnel_id``, naming ``target`` (None: no Addr) to the client."""

    tunnel_id: TunnelId
    network: str
    wire_dialect: str
    target: Address | None


@dataclass(frozen=True, slots=True)
class RelayProxy:
    """Plain relay CONNECT (``relay.proxy`` on): dial ``target`` and splice."""

    target: Address


RelayDecision = RelayRefuse | RelayBind | RelayConnect | RelayProxy


def wire_dialect(req: RelayRequest) -> str:
    """The dialect the request speaks: a Tunnel feature of any LEN but 16 means "tunnel"."""
    return "tunnel" if (req.tunnel_len or 16) != 16 else "relay"


def connect_target(req: RelayRequest) -> Address | None:
    """Two Addr features: source then destination (tunnel dialect); one: the target (relay).

    gost's tunnel handler would take a lone Addr as the source and fail the route; Burrow
    accepts both conventions (docs/protocol.md, CONNECT).
    """
    addrs = req.addrs
    return addrs[1] if len(addrs) >= 2 else (addrs[-1] if addrs else None)


def decide_relay(
    req: RelayRequest,
    *,
    dialect: str,
    authorized: bool,
    proxy_enabled: bool,
    direct: bool,
    ingress: Ingress,
) -> RelayDecision:
    """What to do with one relay request on a server of ``dialect``."""
    tid = req.tunnel_id
    no_tunnel = tid is None or tid.is_zero
    if dialect == "tunnel" and no_tunnel:
        return RelayRefuse(Status.BAD_REQUEST, "missing tunnel ID")
    if not authorized:
        return RelayRefuse(Status.UNAUTHORIZED, "authentication failed")
    network = "udp" if req.udp_flag or req.network == NETWORK_UDP else "tcp"
    wire = wire_dialect(req)
    if req.command == Cmd.BIND:
        if tid is None or tid.is_zero:
            return RelayRefuse(Status.FORBIDDEN, "plain BIND is not enabled")
        return RelayBind(tid, network, wire)
    # CMD 0 is read as CONNECT by rc-era servers, not by the tunnel dialect.
    if req.command == Cmd.CONNECT or (req.command == 0 and dialect != "tunnel"):
        if tid is None or tid.is_zero:
            if not proxy_enabled:
                return RelayRefuse(
                    Status.FORBIDDEN, "plain relay proxying is disabled (no tunnel ID)"
                )
            addrs = req.addrs
            target = addrs[-1] if addrs else None
            if network != "tcp" or target is None or not target.host:
                return RelayRefuse(Status.BAD_REQUEST, "proxy needs a TCP target")
            return RelayProxy(target)
        target = connect_target(req)
        host = target.host if target is not None else ""
        if not direct:
            route = ingress.lookup(host) if host else None
            if route is None or route.tunnel_id != tid:
                return RelayRefuse(
                    Status.HOST_UNREACHABLE, f"host {host!r} is not routed to the requested tunnel"
                )
        return RelayConnect(tid, network, wire, target)
    return RelayRefuse(Status.BAD_REQUEST, f"unsupported command {req.cmd:#04x}")
