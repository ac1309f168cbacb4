"""The one-screen text ``burrow check`` prints: each service's role, addresses and tunnel."""

from __future__ import annotations

from collections.abc import Sequence

from .plan_transport import TransportPlan
from .plan_types import (
    RelayServerPlan,
    ServerNode,
    ServicePlan,
    TargetNode,
    TunnelClientPlan,
)

MAX_RULES_SHOWN = 20
MAX_TARGETS_SHOWN = 8


def _transport(t: TransportPlan, *, listener: bool) -> str:
    """'' for tcp, else e.g. ' over wss (path /ws, verify relay.example)'."""
    if t.kind == "tcp":
        return ""
    notes = [f"path {t.path}"] if t.uses_ws else []
    if t.uses_tls and listener:
        notes.append(f"cert {t.cert_file}" if t.cert_file else "generated self-signed cert")
        if t.ca_file:
            notes.append("client certificates required")
    elif t.uses_tls:
        notes.append(f"verify {t.server_name or 'host'}" if t.secure else "no verification")
        if t.cert_file:
            notes.append("client certificate")
    return f" over {t.kind} ({', '.join(notes)})"


def _server(node: ServerNode) -> str:
    auth = f", user {node.auth[0]!r}" if node.auth else ""
    return f"server {node.addr} ({node.dialect}{auth}){_transport(node.transport, listener=False)}"


def _targets(nodes: Sequence[TargetNode], sniffing: bool) -> str:
    shown = []
    for n in nodes[:MAX_TARGETS_SHOWN]:
        host = f" [host {n.host}]" if n.host else ""
        shown.append(f"{n.name}={n.addr}{host}")
    if len(nodes) > MAX_TARGETS_SHOWN:
        shown.append(f"... {len(nodes) - MAX_TARGETS_SHOWN} more")
    if sniffing:
        shown.append("(sniffing)")
    return ", ".join(shown) or "(none)"


def _describe(plan: ServicePlan) -> list[str]:
    if isinstance(plan, RelayServerPlan):
        eps = ", ".join(str(e) for e in plan.entrypoints) or "none"
        flags = [
            f"entry points {eps}",
            f"{len(plan.ingress_rules)} ingress rules",
            "direct on" if plan.direct else "direct off",
            f"{len(plan.auths)} users" if plan.auths else "no auth",
        ]
        if plan.tunnel_auths or plan.tunnel_auth_required:
            required = ", others refused" if plan.tunnel_auth_required else ""
            # Counts only: a summary must never show a secret.
            flags.append(f"{len(plan.tunnel_auths)} tunnel credentials{required}")
        if plan.entry_tls:
            redirects = sum(c.redirect for c in plan.entry_tls)
            more = f", {redirects} redirecting HTTP" if redirects else ""
            flags.append(f"TLS terminated for {len(plan.entry_tls)} hostnames{more}")
        if plan.proxy_protocol:
            flags.append(f"PROXY protocol from {', '.join(plan.proxy_trusted)}")
        if plan.mux_version_override:
            flags.append(f"smux v{plan.mux_version_override} forced")
        return [
            f"{plan.name}: tunnel server ({plan.dialect} dialect), listen {plan.listen}"
            + _transport(plan.transport, listener=True),
            "    " + "; ".join(flags),
        ]
    if isinstance(plan, TunnelClientPlan):
        kind = "rtcp" if plan.network == "tcp" else "rudp"
        return [
            f"{plan.name}: tunnel client ({kind}) -> {_server(plan.server)}",
            f"    tunnel {plan.tunnel_id}"
            + (f" weight {plan.server.weight}" if plan.server.weight else ""),
            f"    targets: {_targets(plan.nodes, plan.sniffing)}"
            + (f"; PROXY v{plan.proxy_protocol} to targets" if plan.proxy_protocol else ""),
        ]
    extra = f", keepalive ttl {plan.ttl:g}s" if plan.network == "udp" and plan.keepalive else ""
    return [
        f"{plan.name}: visitor ({plan.network}), listen {plan.listen} -> {_server(plan.server)}",
        f"    tunnel {plan.tunnel_id}{extra}",
        f"    targets: {_targets(plan.targets, plan.sniffing)}",
    ]


def render_summary(
    plans: Sequence[ServicePlan], *, source: str | None = None, warnings: int = 0
) -> str:
    """Services, then the ingress rules of each server; ends with a newline."""
    noted = f", {warnings} warning(s) on stderr" if warnings else ""
    out = [f"{source or 'config'}: OK, {len(plans)} service(s){noted}"]
    for plan in plans:
        out.extend("  " + line for line in _describe(plan))
    servers = [p for p in plans if isinstance(p, RelayServerPlan) and p.ingress_rules]
    if servers:
        out.append("ingress rules:")
    for plan in servers:
        out.append(f"  {plan.name}:")
        width = max(len(h) for h, _ in plan.ingress_rules[:MAX_RULES_SHOWN])
        for host, endpoint in plan.ingress_rules[:MAX_RULES_SHOWN]:
            private = "  (private)" if endpoint.startswith("$") else ""
            out.append(f"    {host:<{width}} -> {endpoint.removeprefix('$')}{private}")
        if len(plan.ingress_rules) > MAX_RULES_SHOWN:
            out.append(f"    ... {len(plan.ingress_rules) - MAX_RULES_SHOWN} more")
    return "\n".join(out) + "\n"
