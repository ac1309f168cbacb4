"""A receive buffer that is filled once and never written again."""

from __future__ import annotations


class FreshBuffer(bytearray):
    """A bytearray a reader fills once per socket read and then leaves alone.

    Views of it may be queued by a transport uncopied, like views of ``bytes``: nothing writes
    into it after delivery (a new one is made for every read), so a queued view stays valid.
    """

    __slots__ = ()
