"""A receive buffer that is never written while anyone else holds a view of it."""

from __future__ import annotations

import sys
from typing import Final

# A read above this size gets the link's kept buffer (a fresh large allocation per read cost
# page faults and zeroing on every one: measured as a bimodal, up to 2.5x slower TLS client);
# a smaller one gets its own small buffer, and the kept one is let go (an idle link holds none).
KEEP_ABOVE: Final = 64 * 1024
KEPT_SIZE: Final = 288 * 1024  # uvloop reads up to 256 KiB, plus one record OpenSSL holds


class RecvBuffer(bytearray):
    """A bytearray a reader fills and hands on as views.

    It is filled again only when nothing else references it (no view queued by a transport,
    no parse deferred to a later turn), so a view handed on stays valid for as long as it is
    held, like a view of ``bytes``: transports may queue such views uncopied.
    """

    __slots__ = ()


class RecvBuffers:
    """One link's kept buffer, reused while it is free and reads are large."""

    __slots__ = ("_kept",)

    def __init__(self) -> None:
        self._kept: RecvBuffer | None = None

    def take(self, size: int) -> RecvBuffer:
        """A buffer of at least ``size`` bytes that nobody else references."""
        if size <= KEEP_ABOVE:
            self._kept = None
            return RecvBuffer(size)
        kept = self._kept
        # References: self._kept, the local, getrefcount's argument; any more is a holder.
        if kept is not None and len(kept) >= size and sys.getrefcount(kept) == 3:
            return kept
        kept = self._kept = RecvBuffer(max(size, KEPT_SIZE))
        return kept
