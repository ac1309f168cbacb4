"""Every wire flag bit in one place, each named for the byte it lives in (docs/protocol.md).

Two different bytes carry a "UDP" bit, at different positions, so the names say which byte:
``CMD_FLAG_UDP`` is the high bit of a relay request's CMD byte (gost's deprecated FUDP);
``TUNNEL_ID_FLAG_*`` are bits of byte 16 of a 20-byte tunnel/connector ID.
"""

from __future__ import annotations

from typing import Final

# Relay request CMD byte: the low nibble is the command, 0x80 marks a UDP association.
CMD_FLAG_UDP: Final = 0x80
# Tunnel/connector ID flag byte: a connector ID for a UDP stream, a private tunnel.
TUNNEL_ID_FLAG_UDP: Final = 0x01
TUNNEL_ID_FLAG_PRIVATE: Final = 0x80
