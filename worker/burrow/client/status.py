"""What a tunnel client says about its session: why it failed or ended, and how loudly.

A client whose server is unreachable must not look healthy, yet must not write two lines every
five seconds for a week either. :class:`FailureStreak` counts consecutive failed attempts: the
first failure after start (or after the tunnel was up) is a warning, later ones are debug lines,
and one warning per ``REPEAT_WARNING`` seconds says the client is still failing. Every failure
line carries the next retry delay. The reason helpers turn socket errors and relay statuses into
words an operator can act on (the raw error stays in ``error``).
"""

from __future__ import annotations

import errno
import logging
import socket
from dataclasses import dataclass, field
from typing import Any, Final

from burrow.proto.relay import Status

REPEAT_WARNING: Final = 60.0


@dataclass(slots=True)
class Failure:
    """One attempt that did not register: the event to log and its fields."""

    event: str
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class FailureStreak:
    """Consecutive failed attempts since the tunnel was last up (or since start)."""

    repeat: float = REPEAT_WARNING
    count: int = 0
    _warned_at: float | None = None

    def failed(self, now: float) -> int:
        """Count one failure; the log level for its line (WARNING now and then, else DEBUG)."""
        self.count += 1
        if self._warned_at is None or now - self._warned_at >= self.repeat:
            self._warned_at = now
            return logging.WARNING
        return logging.DEBUG

    def registered(self) -> int:
        """The tunnel is up: how many attempts had failed before; the streak starts over."""
        n, self.count, self._warned_at = self.count, 0, None
        return n


def dial_reason(exc: BaseException) -> str:
    """Why the TCP connection to the server failed, in a few words."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the server running and listening on this address?)"
    if isinstance(exc, TimeoutError):
        return "connect timed out"
    if isinstance(exc, socket.gaierror):
        return "cannot resolve the server name"
    if isinstance(exc, OSError) and exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return "no route to the server"
    return "cannot connect"


def bind_reason(exc: BaseException) -> str:
    """Why the BIND exchange failed after the connection was made."""
    if isinstance(exc, TimeoutError):
        return "no BIND reply in time (is this a relay/tunnel server?)"
    if isinstance(exc, ConnectionError):
        return "server closed the connection during BIND"
    return "bad BIND reply (is this a relay/tunnel server of the same dialect?)"


_STATUS_REASONS: Final[dict[int, str]] = {
    Status.UNAUTHORIZED: "auth refused: check the connector's username/password",
    Status.FORBIDDEN: "forbidden by the server",
    Status.SERVICE_UNAVAILABLE: "server refused the tunnel (connector limit, or draining)",
    Status.BAD_REQUEST: "server rejected the BIND request (check the tunnel ID and dialect)",
}


def refused_reason(status: int) -> str:
    """Why the server said no to the BIND, from its relay status."""
    return _STATUS_REASONS.get(status, "server refused the BIND")


def down_reason(raw: str) -> str:
    """The tunnel connection's close reason, as the tunnel.down line says it."""
    if raw == "connection lost":  # EOF: the server closed (stopped, restarted, dropped us)
        return "server closed the connection"
    return raw
