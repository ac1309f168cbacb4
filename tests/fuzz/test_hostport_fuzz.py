"""Fuzzing host:port text: join and both splits agree; IPv6 literals route like their rules."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from burrow.common.hostport import (
    HostPortError,
    canonical_ipv6,
    join_host_port,
    parse_host_port,
    split_host_port,
    strip_port,
)
from burrow.proto.addr import Address, split_hostport
from burrow.routing.ingress import Ingress

FUZZ = settings(max_examples=300, deadline=None)
UUID = "4d21094e-b74c-4916-86c1-d9fa36ea677b"


_LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
_DOMAIN = st.lists(_LABEL, min_size=1, max_size=4).map(".".join)
_V4 = st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n)))
_V6 = st.integers(0, 2**128 - 1).map(lambda n: str(ipaddress.IPv6Address(n)))
_V6_EXPLODED = st.integers(0, 2**128 - 1).map(lambda n: ipaddress.IPv6Address(n).exploded)
_ZONED = st.tuples(_V6, st.from_regex(r"[a-z0-9]{1,8}", fullmatch=True)).map("%".join)
_HOST = st.one_of(st.just(""), _DOMAIN, _V4, _V6, _V6_EXPLODED, _ZONED)
_PORT = st.integers(0, 65535)
# Arbitrary text, and text made of the characters addresses are made of (far more near-misses).
_TEXT = st.one_of(st.text(max_size=40), st.text(alphabet="[]:%.019af ", max_size=24))


@FUZZ
@given(_HOST, _PORT)
def test_join_then_parse_round_trips(host: str, port: int) -> None:
    text = join_host_port(host, port)
    assert parse_host_port(text) == (host, port)
    assert split_host_port(text) == (host, str(port))
    if host:
        assert strip_port(text) == host


@FUZZ
@given(_TEXT)
def test_strict_agrees_with_go_split(text: str) -> None:
    # Whatever the strict reading accepts (with a port), Go's split reads the same way.
    try:
        host, port = parse_host_port(text)
    except HostPortError:
        return
    assert split_host_port(text) == (host, str(port).zfill(len(text) - text.rfind(":") - 1))
    assert parse_host_port(join_host_port(host, port)) == (host, port)


@FUZZ
@given(_TEXT, _PORT)
def test_http_reading_never_crashes(text: str, default: int) -> None:
    try:
        host, port = parse_host_port(text, default_port=default, bare_ipv6=True)
    except HostPortError:
        return
    assert 0 <= port <= 65535
    assert ":" not in host or canonical_ipv6(host) is not None


@FUZZ
@given(st.one_of(_V6, _V6_EXPLODED), _PORT)
def test_an_ipv6_rule_routes_every_spelling_of_its_host(host: str, port: int) -> None:
    ing = Ingress([(host, UUID)])
    for seen in (join_host_port(host, port), f"[{host}]", host, f"[{host.upper()}]:{port}"):
        route = ing.lookup(seen)
        assert route is not None and route.tunnel_id.text == UUID, seen


@FUZZ
@given(_HOST, _PORT)
def test_relay_address_text_round_trips(host: str, port: int) -> None:
    text = join_host_port(host, port)
    assert split_hostport(text) == (host, port)
    assert Address.from_hostport(text).hostport() == text
