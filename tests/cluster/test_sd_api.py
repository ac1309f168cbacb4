"""gost's SD HTTP plugin requests: what each method means and what is refused before Redis."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from burrow.cluster.sd_api import SdCall, SdError, fill_host, parse_request

T = "4d21094e-b74c-4916-86c1-d9fa36ea677b"
BODY = {"id": "c1", "name": T, "node": "9f1c", "network": "udp", "address": "10.0.0.9:8000"}


def body(**over: object) -> bytes:
    return json.dumps({**BODY, **over}).encode()


def test_methods_map_to_gosts_four_calls() -> None:
    assert parse_request("POST", "", body()) == SdCall(
        "register", T, "c1", "9f1c", "udp", "10.0.0.9:8000"
    )
    assert parse_request("PUT", "", body()) == SdCall(
        "renew", T, "c1", "9f1c", "udp", "10.0.0.9:8000"
    )
    assert parse_request("DELETE", "", body(address="")) == SdCall(
        "deregister", T, "c1", "9f1c", "udp", ""
    )
    assert parse_request("GET", f"name={T}", b"") == SdCall("get", T)


def test_network_defaults_to_tcp_like_gost_plugins() -> None:
    call = parse_request("POST", "", body(network=""))
    assert isinstance(call, SdCall) and call.network == "tcp"


def test_refusals_say_why() -> None:
    cases = [
        ("PATCH", "", body(), 405),
        ("GET", "", b"", 400),
        ("POST", "", b"not json", 400),
        ("POST", "", b"[1]", 400),
        ("POST", "", body(id=""), 400),
        ("POST", "", body(address=""), 400),
        ("POST", "", body(network="sctp"), 400),
        ("POST", "", body(name="a b"), 400),
        ("POST", "", body(node=7), 400),
        ("POST", "", b"x" * 70000, 413),
    ]
    for method, query, raw, status in cases:
        got = parse_request(method, query, raw)
        assert isinstance(got, SdError) and got.status == status and got.error, (method, raw[:40])


@given(
    st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD"]),
    st.text(max_size=60),
    st.binary(max_size=200),
)
def test_any_request_gets_a_call_or_an_error(method: str, query: str, raw: bytes) -> None:
    assert isinstance(parse_request(method, query, raw), SdCall | SdError)


def test_an_address_without_host_gets_the_callers() -> None:
    assert fill_host(":8000", "10.0.0.9") == "10.0.0.9:8000"
    assert fill_host(":8000", "::1") == "[::1]:8000"
    assert fill_host("h:1", "10.0.0.9") == "h:1"
