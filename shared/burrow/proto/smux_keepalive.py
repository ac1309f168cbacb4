"""smux keepalive timer (sans-IO), as xtaci/smux: a NOP every interval, dead after a silent timeout.

Spec: docs/protocol.md, smux frames (keepalive). The driver passes ``now`` in; ``SmuxSession``
tells the timer when the peer was heard from and how much unread data it holds.
"""

from __future__ import annotations

from burrow.proto.smux_frame import HEADER, NOP, VERSIONS, SmuxConfig

# One NOP frame per smux version, shared by every session (not 41 bytes and a pack each).
_NOPS = {v: HEADER.pack(v, NOP, 0, 0) for v in VERSIONS}


class Keepalive:
    """Keepalive state of one smux session."""

    __slots__ = ("_dead", "_ka", "_next_check", "_next_ping", "_paused", "config", "heard", "nop")

    def __init__(self, config: SmuxConfig, now: float) -> None:
        self.config = config
        self._ka = not config.keepalive_disabled
        self._next_ping = now + config.keepalive_interval
        self._next_check = now + config.keepalive_timeout
        self.heard = False  # a byte arrived since the last check (xtaci's dataReady)
        self._dead = False
        self._paused = False
        self.nop = _NOPS[config.version]

    def reading_paused(self, paused: bool, now: float) -> None:
        """The driver stopped (True) or resumed (False) reading the connection.

        While we are not reading, the peer's silence proves nothing, so poll() never declares it
        dead; after resuming it gets a whole keepalive_timeout again."""
        if paused == self._paused:
            return
        self._paused = paused
        if not paused:
            self.heard = False
            self._next_check = now + self.config.keepalive_timeout

    def poll(self, now: float, unread: int) -> tuple[bytes, bool]:
        """Duties due at ``now`` with ``unread`` bytes held: (NOP or b"", peer presumed dead)."""
        if not self._ka:
            return b"", False
        if self._dead:
            return b"", True
        cfg = self.config
        nop = b""
        if now >= self._next_ping:
            nop = self.nop
            # Like a Go ticker: missed ticks are dropped, the phase is kept.
            self._next_ping += cfg.keepalive_interval * (
                (now - self._next_ping) // cfg.keepalive_interval + 1
            )
        if now >= self._next_check:
            self._next_check += cfg.keepalive_timeout * (
                (now - self._next_check) // cfg.keepalive_timeout + 1
            )
            if self.heard or self._paused:
                self.heard = False
            elif unread < cfg.max_receive_buffer:
                # Silence is only fatal if we were willing to read: a full receive buffer means
                # the driver stopped reading, so no frames could arrive (xtaci's bucket check).
                self._dead = True
                return b"", True
        return nop, False

    def next_deadline(self) -> float | None:
        """When ``poll`` should next be called (None when keepalive is disabled)."""
        if not self._ka:
            return None
        return min(self._next_ping, self._next_check)
