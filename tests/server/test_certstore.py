"""CertStore lookups and reloads; the 308 redirect reply."""

from __future__ import annotations

import trustme

from burrow.config.plan_types import EntryCert
from burrow.server.certstore import CertStore
from burrow.server.entry_redirect import redirect_reply

CA = trustme.CA()


def cert(host: str, redirect: bool = False) -> EntryCert:
    leaf = CA.issue_cert(host)
    return EntryCert(
        host, leaf.cert_chain_pems[0].bytes(), leaf.private_key_pem.bytes(), f"{host}.crt", redirect
    )


def test_exact_beats_wildcard_and_wildcard_is_one_label() -> None:
    store = CertStore([cert("*.example.com"), cert("app.example.com", redirect=True)])
    exact, wild = store.context_for("APP.example.com."), store.context_for("b.example.com")
    assert exact is not None and wild is not None and exact is not wild
    assert store.context_for("a.b.example.com") is None
    assert store.context_for("example.com") is None
    assert store.redirects("app.example.com") and not store.redirects("b.example.com")
    assert not CertStore() and store


def test_reload_keeps_unchanged_contexts_and_drops_removed() -> None:
    a, b = cert("a.test"), cert("b.test")
    store = CertStore([a, b])
    ctx_a = store.context_for("a.test")
    renewed = cert("b.test")
    store.reload([a, renewed])
    assert store.context_for("a.test") is ctx_a
    store.reload([renewed])
    assert store.context_for("a.test") is None and store.context_for("b.test") is not None


def test_redirect_reply_keeps_path_and_drops_port() -> None:
    store = CertStore([cert("app.test", redirect=True), cert("b.test")])
    reply = redirect_reply("app.test:80", b"POST /p?q=1 HTTP/1.1\r\nHost: app.test\r\n\r\n", store)
    assert reply is not None and reply.startswith(b"HTTP/1.1 308 ")
    assert b"\r\nLocation: https://app.test/p?q=1\r\n" in reply
    absolute = redirect_reply("app.test", b"GET http://app.test/x HTTP/1.1\r\n\r\n", store)
    assert absolute is not None and b"Location: https://app.test/x\r\n" in absolute
    assert redirect_reply("b.test", b"GET / HTTP/1.1\r\n\r\n", store) is None
    assert redirect_reply("other.test", b"GET / HTTP/1.1\r\n\r\n", store) is None
