"""Many datagrams per wake-up: a raw non-blocking UDP socket read until EAGAIN, already framed.

uvloop's datagram transport calls back once per datagram with a new bytes object, and its
``sendto`` goes through a Python-level transport call each time; on the UDP paths that was most
of the per-datagram cost. Readers here ``recv_into`` one scratch buffer per process, writing
each datagram straight after its 2-byte length prefix (docs/protocol.md, UDP framing), so a
whole batch leaves as one stream write and one copy. The buffer is shared: the event loop runs
one callback at a time and every caller copies what it keeps before returning.
"""

from __future__ import annotations

import socket
import struct
from typing import Final

from burrow.proto.udp import MAX_DATAGRAM, PREFIX_LEN

# Room for ~190 datagrams of 1400 bytes per wake-up, and always for one of 64 KiB + 1 (a
# longer-than-allowed datagram must be seen to be dropped, not silently cut).
SCRATCH_BYTES: Final = 256 * 1024 + PREFIX_LEN + MAX_DATAGRAM + 1
_scratch = bytearray(SCRATCH_BYTES)
SCRATCH: Final = memoryview(_scratch)
pack_prefix: Final = struct.Struct(">H").pack_into


def read_framed(sock: socket.socket) -> tuple[bytes, int, int, OSError | None]:
    """Read ``sock`` (connected, non-blocking) until EAGAIN or the scratch buffer is full.

    Returns (framed datagrams ``LEN | payload ...``, datagrams in it, datagrams dropped for
    being over 65535 bytes, the error that stopped the reading if any: ICMP unreachable etc.).
    """
    view = SCRATCH
    last = SCRATCH_BYTES - (PREFIX_LEN + MAX_DATAGRAM + 1)
    pos = count = too_big = 0
    error: OSError | None = None
    recv_into = sock.recv_into
    while pos <= last:
        try:
            n = recv_into(view[pos + PREFIX_LEN :], MAX_DATAGRAM + 1)
        except (BlockingIOError, InterruptedError):
            break
        except OSError as exc:
            error = exc
            break
        if n > MAX_DATAGRAM:
            too_big += 1
            continue
        pack_prefix(_scratch, pos, n)
        pos += PREFIX_LEN + n
        count += 1
    return (bytes(view[:pos]) if pos else b""), count, too_big, error
