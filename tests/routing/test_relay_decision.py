"""decide_relay as a table: dialect, auth, command, tunnel ID, proxy -> action or status."""

from __future__ import annotations

import uuid

import pytest

from burrow.common.ids import TunnelId
from burrow.proto.addr import Address
from burrow.proto.relay import RelayRequest, Status
from burrow.proto.relay_features import AddrFeature, NetworkFeature, TunnelFeature
from burrow.routing.ingress import Ingress
from burrow.routing.relay_decision import (
    RelayBind,
    RelayConnect,
    RelayProxy,
    RelayRefuse,
    decide_relay,
)

TID = "4d21094e-b74c-4916-86c1-d9fa36ea677b"
INGRESS = Ingress([(".example.com", TID)])


def tunnel(length: int = 16, text: str = TID) -> TunnelFeature:
    return TunnelFeature(TunnelId(uuid.UUID(text).bytes), length)


def addr(hostport: str) -> AddrFeature:
    return AddrFeature(Address.from_hostport(hostport))


ZERO = tunnel(text="00000000-0000-0000-0000-000000000000")
WEB = addr("www.example.com:80")
OTHER = addr("other.invalid:80")
SRC = addr("0.0.0.0:0")

# (cmd, features, dialect, authorized, proxy, direct) -> expected status or action (and network)
TABLE = [
    (1, (WEB, tunnel()), "relay", True, False, False, ("connect", "tcp", "relay")),
    (0, (WEB, tunnel()), "relay", True, False, False, ("connect", "tcp", "relay")),
    (0, (SRC, WEB, tunnel(20)), "tunnel", True, False, False, Status.BAD_REQUEST),
    (1, (SRC, WEB, tunnel(20)), "tunnel", True, False, False, ("connect", "tcp", "tunnel")),
    (0x81, (WEB, tunnel()), "relay", True, False, False, ("connect", "udp", "relay")),
    (
        1,
        (NetworkFeature(1), WEB, tunnel()),
        "relay",
        True,
        False,
        False,
        ("connect", "udp", "relay"),
    ),
    (1, (OTHER, tunnel()), "relay", True, False, False, Status.HOST_UNREACHABLE),
    (1, (OTHER, tunnel()), "relay", True, False, True, ("connect", "tcp", "relay")),
    (1, (tunnel(),), "relay", True, False, False, Status.HOST_UNREACHABLE),
    (1, (WEB, tunnel()), "relay", False, False, False, Status.UNAUTHORIZED),
    (1, (WEB,), "tunnel", False, False, False, Status.BAD_REQUEST),  # tunnel ID checked first
    (1, (WEB, ZERO), "tunnel", True, False, False, Status.BAD_REQUEST),
    (2, (SRC, tunnel()), "relay", True, False, False, ("bind", "tcp", "relay")),
    (2, (SRC, tunnel(20)), "tunnel", True, False, False, ("bind", "tcp", "tunnel")),
    (0x82, (SRC, tunnel()), "relay", True, False, False, ("bind", "udp", "relay")),
    (2, (SRC,), "relay", True, True, False, Status.FORBIDDEN),
    (2, (SRC, ZERO), "relay", True, True, False, Status.FORBIDDEN),
    (1, (WEB,), "relay", True, False, False, Status.FORBIDDEN),
    (1, (WEB,), "relay", True, True, False, ("proxy", "www.example.com:80")),
    (0x81, (WEB,), "relay", True, True, False, Status.BAD_REQUEST),
    (1, (), "relay", True, True, False, Status.BAD_REQUEST),
    (3, (WEB, tunnel()), "relay", True, False, False, Status.BAD_REQUEST),
    (0x0F, (WEB, tunnel()), "relay", True, False, False, Status.BAD_REQUEST),
]


@pytest.mark.parametrize(("cmd", "features", "dialect", "auth", "proxy", "direct", "want"), TABLE)
def test_decide_relay(
    cmd: int,
    features: tuple[object, ...],
    dialect: str,
    auth: bool,
    proxy: bool,
    direct: bool,
    want: object,
) -> None:
    req = RelayRequest(cmd, features)  # type: ignore[arg-type]
    got = decide_relay(
        req, dialect=dialect, authorized=auth, proxy_enabled=proxy, direct=direct, ingress=INGRESS
    )
    if isinstance(want, Status):
        assert isinstance(got, RelayRefuse) and got.status == want, got
    elif want[0] == "proxy":
        assert isinstance(got, RelayProxy) and got.target.hostport() == want[1]
    elif want[0] == "bind":
        assert isinstance(got, RelayBind) and (got.network, got.wire_dialect) == want[1:]
    else:
        assert isinstance(got, RelayConnect) and (got.network, got.wire_dialect) == want[1:]
        assert got.tunnel_id.text == TID
