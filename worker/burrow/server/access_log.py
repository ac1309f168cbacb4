"""AccessLog: one structured line per finished visitor connection of a relay server service.

Off by default; ``[burrow] access_log = true`` (every server service) or a list of service
names. The line is the ``access`` event of the ``burrow.access`` logger, so it comes out as
text (logfmt) or JSON as ``[burrow] log_format`` says. Per service at most ``BURST`` lines per
``WINDOW`` seconds; the rest are counted and summarised in one ``access.suppressed`` line.
"""

from __future__ import annotations

import logging
import time

from burrow.common.logfmt import event, tunnel_ref
from burrow.common.ratelimit import LogLimiter

log = logging.getLogger("burrow.access")

WINDOW = 1.0
BURST = 200  # lines per service per second; a flood beyond that is summarised, not written


class AccessLog:
    """Which services log access lines, and the rate limiter they share."""

    def __init__(self, setting: bool | list[str] | tuple[str, ...] = False) -> None:
        self._limit = LogLimiter(window=WINDOW, burst=BURST)
        self.configure(setting)

    def configure(self, setting: bool | list[str] | tuple[str, ...]) -> None:
        """``[burrow] access_log``: True (every service), False, or service names."""
        self.all = setting is True
        self.services = frozenset(setting) if isinstance(setting, list | tuple) else frozenset()

    def wants(self, service: str) -> bool:
        """True when ``service``'s connections are logged."""
        return self.all or service in self.services

    def finished(
        self,
        *,
        service: str,
        kind: str,
        tunnel: str,
        host: str,
        source: str,
        target: str,
        connector: str,
        up: int,
        down: int,
        duration: float,
        outcome: str,
    ) -> None:
        """Write the line for one connection (unless the service is over its rate)."""
        ok, suppressed = self._limit.admit(service, time.monotonic())
        if suppressed:
            event(log, logging.INFO, "access.suppressed", service=service, lines=suppressed,
                  window=WINDOW)  # fmt: skip
        if not ok:
            return
        event(
            log,
            logging.INFO,
            "access",
            service=service,
            kind=kind,
            tunnel=tunnel_ref(tunnel, log) if tunnel else "",
            host=host,
            source=source,
            target=target,
            connector=connector,
            bytes_up=up,
            bytes_down=down,
            duration=round(duration, 3),
            outcome=outcome,
        )


# One per worker process; App configures it at boot and on every reload.
ACCESS = AccessLog()
