"""Per-slot handoff inboxes: one AF_UNIX SOCK_SEQPACKET socketpair per worker slot.

Worker i receives on ``b_i``; every other worker gets ``a_i`` to send into it. The supervisor keeps
both ends for its whole life, so fds queued for a worker survive that worker's restart.
"""

from __future__ import annotations

import socket


class HandoffMesh:
    """The inbox socketpairs of every slot (none when there is a single worker)."""

    def __init__(self, count: int) -> None:
        self.count = count
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        if count > 1:
            for _ in range(count):
                self._pairs.append(socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET))

    def inbox_fd(self, index: int) -> int:
        """The receive end of slot ``index``'s inbox, or -1 with a single worker."""
        return self._pairs[index][1].fileno() if self._pairs else -1

    def outbox_fds(self, index: int) -> dict[int, int]:
        """Send ends of every other slot's inbox, by peer index."""
        return {j: pair[0].fileno() for j, pair in enumerate(self._pairs) if j != index}

    def pass_fds(self, index: int) -> list[int]:
        """Every mesh fd worker ``index`` inherits."""
        fds = list(self.outbox_fds(index).values())
        if self._pairs:
            fds.append(self.inbox_fd(index))
        return fds

    def close(self) -> None:
        """Close every end."""
        for a, b in self._pairs:
            a.close()
            b.close()
        self._pairs.clear()
