"""SpliceLeg: two plain TCP sockets joined both ways (visitor <-> server, relay proxy <-> target).

Each leg is an asyncio Protocol; a leg pauses reading while its peer's write buffer is full and
while its peer is not connected yet. When one side ends, both close (no half-close, as in gost).

uvloop starts reading only after ``connection_made`` returns, so a pause_reading() there is
ignored: a dialled leg can read its first bytes before the other leg is joined (the visitor's
server leg gets the relay reply and the first payload chunk that way under load). Those bytes
wait in the other leg's ``pending`` and go out first when it connects; they were once dropped.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final, cast

from burrow.common.logfmt import event
from burrow.net.busypoll import poke
from burrow.proto.errors import ProtocolError
from burrow.proto.relay import RelayReader, RelayResponse, Status, status_text

log = logging.getLogger("burrow.splice")

WRITE_HIGH: Final = 256 * 1024
WRITE_LOW: Final = 64 * 1024


class SpliceLeg(asyncio.Protocol):
    """One end of a TCP-to-TCP splice; a leg given a RelayReader strips a relay reply first."""

    def __init__(self, name: str, reply: RelayReader | None = None) -> None:
        self.name = name
        self.peer: SpliceLeg | None = None
        self.transport: asyncio.Transport | None = None
        self.reply = reply
        self.pending: list[bytes] = []  # bytes to write once this leg is connected
        self.target = ""
        self.service = ""
        self._waiting_peer = False
        self._paused_by_peer = False
        self._lost = False  # connection_lost has run: nothing is queued for this leg any more

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # cast, not isinstance: uvloop's transports do not subclass asyncio.Transport
        self.transport = transport = cast(asyncio.Transport, transport)
        transport.set_write_buffer_limits(high=WRITE_HIGH, low=WRITE_LOW)
        pending, self.pending = self.pending, []
        if pending:
            transport.writelines(pending)
        peer = self.peer
        if peer is None or peer.transport is None:
            # The other end is not connected yet: read nothing we could not forward (asyncio
            # honours this; uvloop ignores it here, see data_received and the module docstring).
            self._waiting_peer = True
            transport.pause_reading()
            return
        if peer._waiting_peer:
            peer._waiting_peer = False
            peer.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        poke()
        reader = self.reply
        if reader is not None:
            reader.receive_data(data)
            try:
                msg = reader.next_event()
            except ProtocolError as exc:
                event(log, logging.DEBUG, "visitor.bad_reply", service=self.service,
                      target=self.target, error=str(exc))  # fmt: skip
                self.abort_both()
                return
            if not isinstance(msg, RelayResponse):
                return
            self.reply = None
            if msg.status != Status.OK:
                event(log, logging.INFO, "visitor.refused", service=self.service,
                      target=self.target, status=status_text(msg.status))  # fmt: skip
                self.close_both()
                return
            data = reader.trailing()
            if not data:
                return
        peer = self.peer
        if peer is None:
            return
        if peer.transport is not None:
            peer.transport.write(data)
        elif not peer._lost:
            # Read before the peer is connected (uvloop ignored the pause in connection_made):
            # its connection_made writes this first. Pause now, which does take effect.
            peer.pending.append(data)
            self._waiting_peer = True
            if self.transport is not None:
                self.transport.pause_reading()

    def eof_received(self) -> bool | None:
        return False  # no half-close through a tunnel: close both ends

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._lost = True
        self.pending = []
        peer = self.peer
        if peer is not None and peer.transport is not None:
            peer.transport.close()

    def pause_writing(self) -> None:
        peer = self.peer
        if peer is not None and peer.transport is not None and not self._paused_by_peer:
            self._paused_by_peer = True
            peer.transport.pause_reading()

    def resume_writing(self) -> None:
        peer = self.peer
        if self._paused_by_peer and peer is not None and peer.transport is not None:
            self._paused_by_peer = False
            peer.transport.resume_reading()

    def close_both(self) -> None:
        """Close both ends, flushing what they have buffered."""
        for leg in (self, self.peer):
            if leg is not None and leg.transport is not None:
                leg.transport.close()

    def abort_both(self) -> None:
        """Drop both ends now."""
        for leg in (self, self.peer):
            if leg is not None and leg.transport is not None:
                leg.transport.abort()
