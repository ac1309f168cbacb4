"""Chain and node resolution for plans: the tunnel server a chain reaches, forwarder targets.

Burrow runs one hop with one node whose connector is relay|tunnel and carries a tunnel ID;
anything else is a ConfigError with the key path and a fix.
"""

from __future__ import annotations

from collections.abc import Mapping

from burrow.common.ids import InvalidIdError, TunnelId, parse_uuid

from .errors import ConfigError
from .metadata import get_bool, get_duration, get_int, get_str, mux_options, parse_endpoint
from .plan_transport import dialer_transport
from .plan_types import DEFAULT_CONNECT_TIMEOUT, Dialect, Network, ServerNode, TargetNode
from .schema import Chain, Config, Service


def server_node(
    config: Config, chains: Mapping[str, int], name: str, ref: str
) -> tuple[ServerNode, TunnelId]:
    """The tunnel server chain ``name`` (referenced at ``ref``) reaches, and the tunnel ID."""
    if name not in chains:
        known = ", ".join(chains) or "none defined"
        raise ConfigError(
            f"no chain named {name!r}",
            key=ref,
            fix=f"define it under chains or fix the name (known: {known})",
        )
    c = chains[name]
    chain: Chain = config.chains[c]
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
    transport = dialer_transport(
        dialer,
        node.dialer.tls if node.dialer else None,
        node.dialer.metadata if node.dialer else {},
        f"{nk}.dialer",
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
        connect_timeout=get_duration(md, "connecttimeout", where=mdw) or DEFAULT_CONNECT_TIMEOUT,
        nodelay=get_bool(md, "nodelay", where=mdw),
        dialer=dialer,
        transport=transport,
    )
    return server, tid


def target_nodes(
    i: int, svc: Service, network: Network, *, visitor: bool
) -> tuple[TargetNode, ...]:
    """The forwarder nodes of ``services[i]``: local targets, or virtual hosts (visitor)."""
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
        out.append(TargetNode(node.name or f"target-{j}", str(ep), node.host, node.protocol, net))
    return tuple(out)
