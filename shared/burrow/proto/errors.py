"""Protocol errors, named by who is at fault (h11's split).

``RemoteProtocolError`` means the peer sent bytes we cannot accept: the worker logs one line and
closes that connection, nothing else. ``LocalProtocolError`` means we were asked to produce
something the protocol cannot carry: a bug on our side. Both may carry the relay status to answer
with; ``None`` means "close without a reply" (how gost treats framing errors, docs/protocol.md,
Relay header).
"""

from __future__ import annotations


class ProtocolError(Exception):
    """Base of every error raised by the sans-IO codecs."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RemoteProtocolError(ProtocolError):
    """The peer violated the protocol; close its connection (after ``status``, if set)."""


class LocalProtocolError(ProtocolError):
    """We tried to send something the protocol cannot express."""
