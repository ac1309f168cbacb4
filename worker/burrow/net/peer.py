"""A transport's peer address as Burrow shows and keys it (IPv4-mapped IPv6 unmapped)."""

from __future__ import annotations

import asyncio

from burrow.common.hostport import join_host_port, unmap_ipv4


def peer_address(transport: asyncio.BaseTransport) -> tuple[str, int] | None:
    """(host, port) of the peer, or None for a transport without an IP peer."""
    addr = transport.get_extra_info("peername")
    if not isinstance(addr, tuple) or len(addr) < 2:
        return None
    return unmap_ipv4(str(addr[0])), int(addr[1])


def peer_host(transport: asyncio.BaseTransport) -> str:
    """The peer's host, or "" when it has none."""
    addr = peer_address(transport)
    return "" if addr is None else addr[0]


def peer_text(transport: asyncio.BaseTransport) -> str:
    """The peer as ``host:port`` (IPv6 bracketed), or ""."""
    addr = peer_address(transport)
    return "" if addr is None else join_host_port(*addr)
