"""The "need more bytes" sentinel returned by incremental readers (h11's NEED_DATA)."""

from __future__ import annotations

from typing import Final


class NeedData:
    """Type of :data:`NEED_DATA`; compare with ``is``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = NeedData()
