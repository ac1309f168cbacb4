"""decide_entry as a table: sniff result -> refusal or route (docs/architecture.md, Flows (a))."""

from __future__ import annotations

import pytest

from burrow.proto.relay import Status
from burrow.proto.sniff import Sniffed, sniff
from burrow.routing.entry_decision import EntryRefuse, EntryRoute, decide_entry
from burrow.routing.ingress import Ingress

PUBLIC = "4d21094e-b74c-4916-86c1-d9fa36ea677b"
PRIVATE = "aede1f6a-762b-45da-b937-b6632356555a"
INGRESS = Ingress(
    [(".example.com", PUBLIC), ("priv.local", "$" + PRIVATE), ("zero.local", "0" * 32)]
)
LONG = "a" * 250 + ".example.com"  # matches the wildcard, longer than 255 bytes

NH, HU = Status.NETWORK_UNREACHABLE, Status.HOST_UNREACHABLE


@pytest.mark.parametrize(
    ("found", "dialect", "expected"),
    [
        (None, "relay", NH),
        (Sniffed("http", ""), "relay", NH),
        (Sniffed("tls", ""), "tunnel", NH),
        (Sniffed("http", "a.example.com:99999"), "relay", NH),
        (Sniffed("http", "[::1"), "relay", NH),
        (Sniffed("http", "nobody.invalid"), "relay", HU),
        (Sniffed("http", "priv.local"), "relay", HU),
        (Sniffed("http", "zero.local"), "tunnel", HU),
        (Sniffed("http", LONG), "relay", HU),
        (Sniffed("tls", LONG), "tunnel", HU),
        (Sniffed("http", "www.example.com"), "relay", "www.example.com:80"),
        (Sniffed("http", "WWW.example.com:8080"), "tunnel", "WWW.example.com:8080"),
        (Sniffed("tls", "www.example.com"), "tunnel", "www.example.com:443"),
        (Sniffed("tls", "www.example.com"), "relay", "www.example.com:0"),
        (Sniffed("http", "example.com"), "relay", "example.com:80"),
    ],
)
def test_decide_entry(found: Sniffed | None, dialect: str, expected: object) -> None:
    got = decide_entry(found, INGRESS, dialect)
    if isinstance(expected, Status):
        assert isinstance(got, EntryRefuse) and got.status == expected
    else:
        assert isinstance(got, EntryRoute) and got.target == expected
        assert got.tunnel_id.text == PUBLIC


def test_refusals_name_their_reason() -> None:
    got = decide_entry(Sniffed("http", LONG), INGRESS, "relay")
    assert isinstance(got, EntryRefuse) and got.fields["reason"] == "host longer than 255 bytes"
    got = decide_entry(Sniffed("http", "priv.local"), INGRESS, "relay")
    assert isinstance(got, EntryRefuse) and got.fields["reason"] == "private tunnel"


@pytest.mark.parametrize(
    ("head", "host"),
    [
        (b"GET http://a.example.com/x HTTP/1.1\r\nHost: b.example.com\r\n\r\n", "a.example.com"),
        (b"GET HTTPS://u:p@a.example.com:81?q HTTP/1.1\r\nHost: b\r\n\r\n", "a.example.com:81"),
        (b"GET http://a.example.com HTTP/1.1\r\n\r\n", "a.example.com"),
        (b"GET /x HTTP/1.1\r\nHost: b.example.com\r\n\r\n", "b.example.com"),
        (b"CONNECT a.example.com:443 HTTP/1.1\r\nHost: b.example.com\r\n\r\n", "b.example.com"),
    ],
)
def test_absolute_form_authority_wins(head: bytes, host: str) -> None:
    """RFC 9112 §3.2.2: the absolute URI's authority, not Host, names the target."""
    assert sniff(head) == Sniffed("http", host)


def test_ipv6_host_header_routes_by_an_ipv6_rule() -> None:
    ingress = Ingress([("::1", PUBLIC)])
    for raw, target in (
        (b"GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", "[::1]:8080"),
        (b"GET / HTTP/1.1\r\nHost: [::1]\r\n\r\n", "[::1]:80"),
        (b"GET http://[0:0::1]:81/ HTTP/1.1\r\nHost: x\r\n\r\n", "[0:0::1]:81"),
    ):
        found = sniff(raw)
        assert isinstance(found, Sniffed)
        got = decide_entry(found, ingress, "tunnel")
        assert isinstance(got, EntryRoute) and got.target == target, (raw, got)
        assert got.tunnel_id.text == PUBLIC
    refused = decide_entry(Sniffed("http", "[::2]:8080"), ingress, "relay")
    assert isinstance(refused, EntryRefuse) and refused.status == HU
