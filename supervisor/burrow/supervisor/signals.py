"""Signal handlers that only record: a queue plus a wakeup socket the poll loop watches."""

from __future__ import annotations

import collections
import signal
import socket
from types import FrameType

HANDLED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)
# More pending signals than this are coalesced away; nobody means 64 separate HUPs.
MAX_PENDING = 64


class SignalQueue:
    """Records delivered signals; :meth:`fileno` becomes readable when one arrives."""

    def __init__(self, signals: tuple[signal.Signals, ...] = HANDLED) -> None:
        self.signals = signals
        self._pending: collections.deque[signal.Signals] = collections.deque(maxlen=MAX_PENDING)
        self._rsock, self._wsock = socket.socketpair()
        self._rsock.setblocking(False)
        self._wsock.setblocking(False)
        self._previous: dict[signal.Signals, object] = {}
        self._old_wakeup = -1

    def install(self) -> None:
        """Install the handlers and the wakeup fd (main thread only)."""
        self._old_wakeup = signal.set_wakeup_fd(self._wsock.fileno(), warn_on_full_buffer=False)
        for sig in self.signals:
            self._previous[sig] = signal.signal(sig, self._record)

    def _record(self, signum: int, frame: FrameType | None) -> None:
        # deque.append is atomic; the C-level handler has already written to the wakeup fd.
        self._pending.append(signal.Signals(signum))

    def fileno(self) -> int:
        """The read end of the wakeup socket."""
        return self._rsock.fileno()

    def drain(self) -> list[signal.Signals]:
        """Signals recorded since the last call, oldest first."""
        try:
            while self._rsock.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass
        out = []
        while self._pending:
            out.append(self._pending.popleft())
        return out

    def restore(self) -> None:
        """Put back the previous handlers and wakeup fd, then close the sockets."""
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        self._previous.clear()
        signal.set_wakeup_fd(self._old_wakeup)
        self._rsock.close()
        self._wsock.close()
