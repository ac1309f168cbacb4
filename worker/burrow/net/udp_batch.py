"""Many datagrams per wake-up: a raw non-blocking UDP socket read until EAGAIN, already framed.

uvloop's datagram transport calls back once per datagram with a new bytes object, and its
``sendto`` goes through a Python-level transport call each time; on the UDP paths that was most
of the per-datagram cost. Readers here ``recv_into`` one scratch buffer per process, writing
each datagram straight after its 2-byte length prefix (docs/protocol.md, UDP framing), so a
whole batch leaves as one stream write and one copy. The buffer is shared: the event loop runs
one callback at a time and every caller copies what it keeps before returning.

Sending, runs of equal-sized datagrams go out with UDP GSO (``UDP_SEGMENT``, Linux 4.18+): one
``sendmsg`` of up to 64 datagrams, which the kernel cuts back into the same datagrams; the
receiver sees exactly what one ``send`` each would have produced. Where the kernel or the route
refuses it (EIO: no checksum offload; EINVAL: a segment would need IP fragmentation), the run is
sent one datagram at a time, as before.
"""

from __future__ import annotations

import errno
import socket
import struct
from collections.abc import Sequence
from typing import Final

from burrow.proto.udp import MAX_DATAGRAM, PREFIX_LEN

# Room for ~190 datagrams of 1400 bytes per wake-up, and always for one of 64 KiB (no UDP
# payload is longer: 65507 bytes over IPv4, 65527 over IPv6).
SCRATCH_BYTES: Final = 256 * 1024 + PREFIX_LEN + MAX_DATAGRAM
_scratch = bytearray(SCRATCH_BYTES)
SCRATCH: Final = memoryview(_scratch)
pack_prefix: Final = struct.Struct(">H").pack_into


def read_framed(sock: socket.socket) -> tuple[bytes, int, OSError | None]:
    """Read ``sock`` (connected, non-blocking) until EAGAIN or the scratch buffer is full.

    Returns (framed datagrams ``LEN | payload ...``, how many, the error that stopped the
    reading if any: an ICMP unreachable and the like).
    """
    view = SCRATCH
    last = SCRATCH_BYTES - (PREFIX_LEN + MAX_DATAGRAM)
    pos = count = 0
    error: OSError | None = None
    recv_into = sock.recv_into
    while pos <= last:
        try:
            n = recv_into(view[pos + PREFIX_LEN :], MAX_DATAGRAM)
        except (BlockingIOError, InterruptedError):
            break
        except OSError as exc:
            error = exc
            break
        pack_prefix(view, pos, n)
        pos += PREFIX_LEN + n
        count += 1
    return (bytes(view[:pos]) if pos else b""), count, error


SOL_UDP: Final = getattr(socket, "SOL_UDP", 17)
UDP_SEGMENT: Final = getattr(socket, "UDP_SEGMENT", 103)  # linux/udp.h; not in Python 3.11
MAX_SEGMENTS: Final = 64  # UDP_MAX_SEGMENTS
GSO_MAX_BYTES: Final = 65000  # one GSO send stays under the 64 KiB IP datagram limit
_NO_GSO: Final = frozenset({errno.EIO, errno.ENOPROTOOPT, errno.EOPNOTSUPP})
_segment_size = struct.Struct("=H").pack


class UdpSender:
    """Sends datagrams on a connected non-blocking socket, runs of equal size by UDP GSO."""

    __slots__ = ("gso", "sock")

    def __init__(self, sock: socket.socket, gso: bool = True) -> None:
        self.sock = sock
        self.gso = gso  # cleared for good once the kernel says it cannot do GSO here

    def send(self, datagrams: Sequence[bytes | memoryview]) -> tuple[int, OSError | None]:
        """Send ``datagrams`` in order: (how many went out, the last error other than EAGAIN).

        Stops at EAGAIN (the send buffer is full: the rest would meet the same); a datagram the
        socket refuses otherwise (ICMP error pending, too big) is skipped.
        """
        sock, n, i, sent = self.sock, len(datagrams), 0, 0
        error: OSError | None = None
        while i < n:
            size = len(datagrams[i])
            j = i + 1
            if self.gso and size:
                cap = min(n, i + MAX_SEGMENTS, i + GSO_MAX_BYTES // size)
                while j < cap and len(datagrams[j]) == size:
                    j += 1
                if j < cap and 0 < len(datagrams[j]) < size:
                    j += 1  # a shorter last segment is allowed (an empty one would vanish)
            if j - i > 1:
                try:
                    sock.sendmsg(datagrams[i:j], [(SOL_UDP, UDP_SEGMENT, _segment_size(size))])
                except (BlockingIOError, InterruptedError):
                    break
                except OSError as exc:
                    if exc.errno in _NO_GSO:
                        self.gso = False
                    # EINVAL (segment over the path MTU) and the rest: one at a time below
                else:
                    sent += j - i
                    i = j
                    continue
            for datagram in datagrams[i:j]:
                try:
                    sock.send(datagram)
                except (BlockingIOError, InterruptedError):
                    return sent, error
                except OSError as exc:
                    error = exc
                    continue
                sent += 1
            i = j
        return sent, error
