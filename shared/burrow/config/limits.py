"""``[burrow.limits]``: the bounds that keep one peer from taking a worker down.

Every default is settled here, in one place; workers receive them inside their plans. Counts are
per worker process unless the name says otherwise (a worker cannot see its siblings' sockets
without a round trip, and the kernel spreads accepts evenly over the SO_REUSEPORT group).
Zero turns a bound off where the docstring says so.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

Count = Annotated[int, msgspec.Meta(ge=0, le=10_000_000)]
Bytes = Annotated[int, msgspec.Meta(ge=0, le=1 << 40)]
Seconds = Annotated[float, msgspec.Meta(ge=0, extra={"duration": True})]


class Limits(
    msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True, omit_defaults=True
):
    """Resource bounds; see docs/security.md for what each one protects."""

    # Open connections a worker accepts on relay ports, entry points and visitors (0 = no cap).
    max_connections: Count = 20_000
    # Open connections from one source address per worker (0 = no cap).
    max_connections_per_source: Count = 1_000
    # A routed (piped) connection with no byte either way for this long is closed (0 = never).
    idle_timeout: Seconds = 600.0
    # Streams one smux session may hold open at once; a SYN beyond it is refused with a FIN.
    max_streams_per_session: Count = 16_384
    # smux frames handled per read before yielding to the event loop (the work budget).
    frames_per_turn: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 256
    # Bytes buffered for one stream whose local reader is slower than the tunnel (smux v1 has no
    # windows): past this the stream alone is closed, never the tunnel.
    stream_buffer: Bytes = 1 << 20
    # Connectors (tunnel connections) one tunnel ID may have on this server.
    max_connectors_per_tunnel: Count = 64
    # Failed logins per source address per minute before that source is refused for a while.
    auth_failures_per_minute: Count = 10
    # How long a source that exceeded auth_failures_per_minute is refused.
    auth_ban: Seconds = 60.0
    # Failover (docs/failover.md). Silence after which a connector whose client acks new streams
    # (a Burrow client) turns suspect and its waiting streams move to another one (0 = off).
    failover_ack_timeout: Seconds = 1.0
    # The same for a connector that sends no acks (a gost client): it turns suspect, but its
    # streams are left alone, as a slow target may be all that keeps it silent (0 = off).
    failover_silent_timeout: Seconds = 5.0
    # Visitor bytes kept per stream until its first reply byte, to replay on another connector
    # when the first closes or stalls (0 = never move a stream).
    failover_replay: Bytes = 65536
