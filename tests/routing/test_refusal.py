"""Refusal replies as data: entry-point decision -> reason code -> HTTP 502/503 with a text body."""

from __future__ import annotations

import pytest

from burrow.proto.relay import Status
from burrow.proto.sniff import Sniffed
from burrow.routing import refusal as r
from burrow.routing.entry_decision import EntryRefuse, decide_entry
from burrow.routing.ingress import Ingress

PUBLIC = "4d21094e-b74c-4916-86c1-d9fa36ea677b"
SECRET = "aede1f6a-762b-45da-b937-b6632356555a"
INGRESS = Ingress([(".example.com", PUBLIC), ("priv.local", "$" + SECRET)])
NO_RULE_SAYS = "No ingress rule names the host nobody.invalid."
PRIVATE_SAYS = (
    "The host priv.local is served by a private tunnel: "
    "connect through a visitor that names its tunnel ID."
)


def parse(reply: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = reply.partition(b"\r\n\r\n")
    lines = head.decode("ascii").split("\r\n")
    status = int(lines[0].split()[1])
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return status, headers, body


@pytest.mark.parametrize(
    ("found", "code", "status", "says"),
    [
        (None, r.NO_HOST, 502, "no Host header or TLS server name"),
        (Sniffed("http", "[::1"), r.BAD_HOST, 502, "could not read the host [::1"),
        (Sniffed("http", "nobody.invalid"), r.NO_RULE, 502, NO_RULE_SAYS),
        (Sniffed("http", "priv.local:8080"), r.PRIVATE, 502, PRIVATE_SAYS),
        (Sniffed("http", "a" * 300 + ".example.com"), r.HOST_TOO_LONG, 502, "longer than 255"),
    ],
)
def test_entry_refusals_carry_a_code_and_a_body(
    found: Sniffed | None, code: str, status: int, says: str
) -> None:
    got = decide_entry(found, INGRESS, "relay")
    assert isinstance(got, EntryRefuse) and got.code == code
    reply = r.http_reply(r.Refusal(got.code, got.host))
    st, headers, body = parse(reply)
    assert st == status
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    assert headers["Connection"] == "close"
    assert int(headers["Content-Length"]) == len(body)
    assert says in body.decode()
    assert SECRET not in body.decode() and SECRET[:8] not in body.decode()


def test_no_client_is_503_and_names_the_host() -> None:
    status, _, body = parse(r.http_reply(r.Refusal(r.NO_CLIENT, "www.example.com")))
    assert status == 503
    assert body == (
        b"503 Service Unavailable\n"
        b"No tunnel client is connected for the host www.example.com; try again later.\n"
    )


def test_target_unreachable_is_502() -> None:
    refusal = r.Refusal(r.TARGET_UNREACHABLE, "www.example.com")
    assert refusal.http_status == 502
    assert refusal.reason == "tunnel client could not reach its target"
    assert "could not reach its target" in refusal.body()


def test_host_is_sanitised_and_capped() -> None:
    evil = "x.example.com\r\nSet-Cookie: a=b<script>" + "y" * 5000
    body = r.Refusal(r.NO_RULE, evil).body()
    assert "\r" not in body and "<" not in body and " a=b" not in body
    assert len(body) < 200
    assert r.sanitize_host("www.example.com:8080") == "www.example.com:8080"
    assert r.sanitize_host("[::1]:80") == "[::1]:80"
    assert r.sanitize_host("é.example") == "?.example"
    assert r.sanitize_host("a" * 64) == "a" * 64
    assert r.sanitize_host("a" * 65) == "a" * 64 + "..."


def test_without_a_host_the_body_says_this_host() -> None:
    assert "connected for this host" in r.Refusal(r.NO_CLIENT).body()


def test_status_only_refusals_and_head() -> None:
    assert r.refusal_for_status(Status.SERVICE_UNAVAILABLE).http_status == 503
    assert r.refusal_for_status(Status.HOST_UNREACHABLE).http_status == 502
    assert r.Refusal("made-up").http_status == 502  # an unknown code still gives a reply
    full = r.http_reply(r.Refusal(r.NO_RULE, "a.b"))
    head = r.http_reply(r.Refusal(r.NO_RULE, "a.b"), head=True)
    assert full.startswith(head) and head.endswith(b"\r\n\r\n") and len(full) > len(head)
    assert parse(head)[1]["Content-Length"] == str(len(parse(full)[2]))
