"""What a sniffer answers (Sniffed, NEED_MORE, NOT_MATCHED) and the resumable sniffer base.

Shared by the HTTP (sniff.py) and TLS (sniff_tls.py) sniffers; sniff.py re-exports the results.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal


@dataclass(frozen=True, slots=True)
class Sniffed:
    """A recognised protocol and the host it names ("" when it names none)."""

    protocol: Literal["http", "tls"]
    host: str


class NeedMore:
    """Type of NEED_MORE: the bytes so far could still become a match."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NEED_MORE"


class NotMatched:
    """Type of NOT_MATCHED: not this protocol, malformed, or over the cap."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NOT_MATCHED"


NEED_MORE: Final = NeedMore()
NOT_MATCHED: Final = NotMatched()
SniffResult = Sniffed | NeedMore | NotMatched
Buffer = bytes | bytearray | memoryview
# A host (SNI or Host header): printable ASCII without spaces (sniff.py, Decisions).
_HOST_VALUE = re.compile(rb"[\x21-\x7e]*")


def _wait(buf_len: int, cap: int) -> NeedMore | NotMatched:
    """NEED_MORE, unless the caller already showed us everything we will ever look at."""
    return NOT_MATCHED if buf_len >= cap else NEED_MORE


class _Resumable:
    """A sniffer fed the whole (grown) buffer on each call; its first verdict is kept for good."""

    __slots__ = ("result",)

    def __init__(self) -> None:
        self.result: Sniffed | NotMatched | None = None

    def feed(self, buf: Buffer) -> SniffResult:
        if self.result is None:
            r = self._feed(buf)
            if r is not NEED_MORE:
                self.result = r  # type: ignore[assignment]
            return r
        return self.result

    def _feed(self, buf: Buffer) -> SniffResult:
        raise NotImplementedError
