"""RequestRewriter: forwarding headers on every request head, bodies framed and untouched."""

from __future__ import annotations

import pytest

from burrow.proto.http_forward import ForwardError, RequestRewriter, forwarded_for

ADDED = (
    b"X-Forwarded-For: 192.0.2.1\r\nX-Forwarded-Proto: https\r\n"
    b"Forwarded: for=192.0.2.1;proto=https;host=app.test\r\n\r\n"
)


def rw() -> RequestRewriter:
    return RequestRewriter("192.0.2.1", "app.test")


def feed_bytewise(r: RequestRewriter, data: bytes) -> bytes:
    return b"".join(r.feed(data[i : i + 1]) for i in range(len(data)))


def test_head_gets_the_three_headers_and_spoofed_ones_are_dropped() -> None:
    head = (
        b"GET /x HTTP/1.1\r\nHost: app.test\r\nX-Forwarded-For: 6.6.6.6\r\n"
        b"forwarded: for=6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\nAccept: */*\r\n\r\n"
    )
    out = rw().feed(head)
    assert out == b"GET /x HTTP/1.1\r\nHost: app.test\r\nAccept: */*\r\n" + ADDED
    assert b"6.6.6.6" not in out


def test_any_chunking_gives_the_same_bytes() -> None:
    data = (
        b"POST /a HTTP/1.1\nHost: App.Test:443\nContent-Length: 5\n\nhello"
        b"\r\n"  # a stray CRLF between requests
        b"POST /b HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3;ext=1\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n"
        b"GET /c HTTP/1.1\r\nHost: app.test\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n"
    )
    whole = rw().feed(data)
    assert feed_bytewise(rw(), data) == whole
    assert whole.count(b"X-Forwarded-For: 192.0.2.1") == 3
    assert b"6.6.6.6" not in whole
    assert b'host="App.Test:443"' in whole
    assert b"\r\n\r\nhello" in whole and b"3;ext=1\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n" in whole


def test_upgrade_switches_to_passthrough() -> None:
    r = rw()
    head = (
        b"GET /ws HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
    )
    out = r.feed(head + b"\x81\x05frame")
    assert out.endswith(ADDED + b"\x81\x05frame") and r.passthrough
    assert r.feed(b"GET / HTTP/1.1\r\nX-Forwarded-For: 1\r\n\r\n").endswith(
        b"X-Forwarded-For: 1\r\n\r\n"
    )


def test_ipv6_client_is_bracketed_and_quoted() -> None:
    assert forwarded_for("::1") == '"[::1]"'
    out = RequestRewriter("::1", "app.test").feed(b"GET / HTTP/1.0\r\n\r\n")
    assert b'Forwarded: for="[::1]";proto=https;host=app.test\r\n' in out


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"GET / HTTP/1.1\r\nHost: other.test\r\n\r\n", 421),
        (b"GET / HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: app.test\r\nHost: app.test\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\nHost: app.test\r\n\r\n", 505),
        (b"\x16\x03\x01\x00\x05hello\r\n\r\n", 400),
        (
            b"GET / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            400,
        ),
        (b"GET / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 1, 2\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
        (b"GET / HTTP/1.1\r\nHost : app.test\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: app.test\r\nX: a\r\n b\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: app.test\r\nX: " + b"a" * 20000, 431),
    ],
)
def test_refusals(data: bytes, status: int) -> None:
    with pytest.raises(ForwardError) as err:
        rw().feed(data)
    assert err.value.status == status
