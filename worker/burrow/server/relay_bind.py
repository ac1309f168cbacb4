"""What the relay port answers a tunnel client's BIND with, and the smux settings it then speaks.

Pure functions of the request and the plan (docs/protocol.md, BIND); relay_server.py uses them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from burrow.common.ids import TunnelId
from burrow.config.plan_types import RelayServerPlan
from burrow.proto.addr import Address
from burrow.proto.smux import SmuxConfig


def endpoint_name(tunnel_id: TunnelId) -> str:
    """gost's endpoint: first 8 bytes of MD5 of the tunnel ID text, hex (docs/protocol.md, BIND)."""
    return hashlib.md5(tunnel_id.text.encode()).hexdigest()[:16]


def bind_reply_address(addrs: Sequence[Address], tunnel_id: TunnelId) -> Address:
    """The Addr of a BIND reply: the requested bind address, an unspecified host -> endpoint."""
    port = addrs[-1].port if addrs else 0
    host = addrs[-1].host if addrs else ""
    if not host or host in ("0.0.0.0", "::"):
        host = endpoint_name(tunnel_id)
    # Address.of, not a "host:port" string: an IPv6 host would be split at its own colons.
    return Address.of(host, port)


def smux_config(plan: RelayServerPlan, wire_dialect: str) -> SmuxConfig:
    """smux settings for a tunnel connection: the request's dialect unless mux.version says."""
    version = plan.mux_version_override or (1 if wire_dialect == "relay" else 2)
    mux = plan.mux
    if wire_dialect == plan.dialect:
        stream_buffer = mux.max_stream_buffer
    else:
        stream_buffer = 65536 if wire_dialect == "relay" else 1048576
    return SmuxConfig(
        version=version,
        max_frame_size=mux.max_frame_size,
        max_receive_buffer=mux.max_receive_buffer,
        max_stream_buffer=stream_buffer,
        keepalive_interval=mux.keepalive_interval,
        keepalive_timeout=mux.keepalive_timeout,
        keepalive_disabled=mux.keepalive_disabled,
    )


class SmuxConfigs:
    """``smux_config`` of one plan per wire dialect, made once: a frozen, validated SmuxConfig
    per BIND was a few microseconds of every registration. A reload makes a new one."""

    __slots__ = ("_by_dialect", "plan")

    def __init__(self, plan: RelayServerPlan) -> None:
        self.plan = plan
        self._by_dialect: dict[str, SmuxConfig] = {}

    def get(self, wire_dialect: str) -> SmuxConfig:
        """The settings for a tunnel connection of ``wire_dialect`` (see smux_config)."""
        cfg = self._by_dialect.get(wire_dialect)
        if cfg is None:
            cfg = self._by_dialect[wire_dialect] = smux_config(self.plan, wire_dialect)
        return cfg
