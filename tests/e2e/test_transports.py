"""Burrow <-> Burrow over tcp, tls, ws and wss (issue 12, transports), both dialects.

Certificates come from trustme (the session CA of conftest); an expired one is signed with the
same CA through cryptography. Bad input on a TLS/WebSocket relay port gets one log line and a
close while a healthy tunnel on the same server keeps answering.
"""

from __future__ import annotations

import datetime
import socket
import ssl
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from e2e.attack import with_limits
from e2e.conftest import TUNNEL_A
from e2e.harness import (
    BurrowProcess,
    Launcher,
    client_config,
    client_service,
    forward_node,
    server_config,
    visitor_config,
    visitor_service,
    wait_for,
)
from e2e.peers import HttpPeer, UdpEchoPeer, http_request, read_http_response
from e2e.topology import HEALTHY_BODY, HEALTHY_HOST, listener_address, wait_healthy

UP = 8.0
WORKERS = 2
NAME = "relay.example"  # the server certificate's name; clients dial 127.0.0.1 with serverName


def _pem(tmp: Path, name: str, blob: trustme.Blob | bytes) -> str:
    path = tmp / name
    if isinstance(blob, bytes):
        path.write_bytes(blob)
    else:
        blob.write_to_path(str(path))
    return str(path)


@pytest.fixture
def certs(ca: trustme.CA, tmp_path: Path) -> dict[str, str]:
    """PEM files: the CA, a server cert for NAME, a client cert, an unrelated CA."""
    server = ca.issue_cert(NAME)
    client = ca.issue_cert("client.example")
    other = trustme.CA()
    return {
        "ca": _pem(tmp_path, "ca.pem", ca.cert_pem),
        "cert": _pem(tmp_path, "server.pem", server.cert_chain_pems[0]),
        "key": _pem(tmp_path, "server.key", server.private_key_pem),
        "client_cert": _pem(tmp_path, "client.pem", client.cert_chain_pems[0]),
        "client_key": _pem(tmp_path, "client.key", client.private_key_pem),
        "other_ca": _pem(tmp_path, "other-ca.pem", other.cert_pem),
    }


def _expired(ca: trustme.CA, tmp: Path) -> tuple[str, str]:
    """A certificate for NAME signed by ``ca`` that expired yesterday."""
    ca_key = serialization.load_pem_private_key(ca.private_key_pem.bytes(), None)
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, NAME)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=30))
        .not_valid_after(now - datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(NAME)]), False)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return (
        _pem(tmp, "expired.pem", cert.public_bytes(serialization.Encoding.PEM)),
        _pem(tmp, "expired.key", key_pem),
    )


def _server(
    burrow: Launcher,
    transport: str,
    dialect: str,
    tls: dict[str, str] | None = None,
    workers: int = 1,
    name: str = "server",
) -> BurrowProcess:
    cfg = server_config([(".example.com", TUNNEL_A)], dialect=dialect)
    listener: dict[str, Any] = {"type": transport}
    if tls:
        listener["tls"] = tls
    cfg["services"][0]["listener"] = listener
    return burrow.start(name, cfg, workers=workers)


def _node_dialer(cfg: dict[str, Any], transport: str, tls: dict[str, Any] | None) -> None:
    dialer: dict[str, Any] = {"type": transport}
    if tls:
        dialer["tls"] = tls
    cfg["chains"][0]["hops"][0]["nodes"][0]["dialer"] = dialer


def _client(
    burrow: Launcher,
    server: BurrowProcess,
    web: HttpPeer,
    transport: str,
    dialect: str,
    tls: dict[str, Any] | None,
    name: str = "client",
) -> BurrowProcess:
    relay = server.listener("relay").address
    cfg = client_config(
        relay, TUNNEL_A, [client_service("s", [forward_node("w", web.address)])], dialect=dialect
    )
    _node_dialer(cfg, transport, tls)
    return burrow.start(name, cfg)


def _secure(certs: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {"caFile": certs["ca"], "secure": True, "serverName": NAME, **extra}


@pytest.mark.parametrize("dialect", ["relay", "tunnel"])
@pytest.mark.parametrize("transport", ["tcp", "tls", "ws", "wss"])
def test_tunnel_over_transport(
    burrow: Launcher, web: HttpPeer, certs: dict[str, str], transport: str, dialect: str
) -> None:
    """Client and a TCP visitor reach the server over each transport; HTTP flows end to end."""
    tls_on = transport in ("tls", "wss")
    server_tls = {"certFile": certs["cert"], "keyFile": certs["key"]} if tls_on else None
    server = _server(burrow, transport, dialect, server_tls, workers=WORKERS)
    client_tls = _secure(certs) if tls_on else None
    client = _client(burrow, server, web, transport, dialect, client_tls)
    client.wait_log(r"tunnel\.up", timeout=UP)
    entry = listener_address(server, "entrypoint")
    wait_healthy(entry, UP)
    # A visitor reaches the tunnel by ID over the same transport (server with 2 workers: some
    # of these land on the worker without the connector and go through the bridge).
    relay = server.listener("relay").address
    vcfg = visitor_config(relay, TUNNEL_A, [visitor_service("v", target=HEALTHY_HOST + ":80")],
                          dialect=dialect)  # fmt: skip
    _node_dialer(vcfg, transport, client_tls)
    visitor = burrow.start("visitor", vcfg)
    vaddr = listener_address(visitor, "visitor")
    for _ in range(6):
        assert http_request(vaddr, HEALTHY_HOST, timeout=5.0) == (200, HEALTHY_BODY)


def test_generated_certificate(burrow: Launcher, web: HttpPeer) -> None:
    """A tls listener without certFile makes a self-signed certificate and says so."""
    server = _server(burrow, "tls", "tunnel")
    server.wait_log(r"tls\.self_signed", timeout=UP)
    client = _client(burrow, server, web, "tls", "tunnel", None)  # secure off, as gost's default
    client.wait_log(r"tunnel\.up", timeout=UP)
    wait_healthy(listener_address(server, "entrypoint"), UP)


def test_client_certificates(burrow: Launcher, web: HttpPeer, certs: dict[str, str]) -> None:
    """caFile on the listener: a client with a certificate gets in, one without is refused."""
    tls = {"certFile": certs["cert"], "keyFile": certs["key"], "caFile": certs["ca"]}
    server = _server(burrow, "tls", "relay", tls)
    good = _client(burrow, server, web, "tls", "relay",
                   _secure(certs, certFile=certs["client_cert"], keyFile=certs["client_key"]))  # fmt: skip
    good.wait_log(r"tunnel\.up", timeout=UP)
    wait_healthy(listener_address(server, "entrypoint"), UP)
    bad = _client(burrow, server, web, "tls", "relay", _secure(certs), name="nocert")
    server.wait_log(r"relay\.rejected.*client sent no certificate", timeout=UP)
    bad.wait_log(r"tunnel\.(bind|dial)_failed", timeout=UP)
    assert "tunnel.up" not in bad.stderr()
    assert http_request(listener_address(server, "entrypoint"), HEALTHY_HOST) == (
        200,
        HEALTHY_BODY,
    )


def _closed(sock: socket.socket | ssl.SSLSocket) -> bool:
    """True when the peer closes (EOF or reset) within the socket's timeout."""
    try:
        while sock.recv(4096):
            pass
    except ConnectionResetError:
        return True
    return True


def test_bad_input_on_tls_and_ws_ports(
    burrow: Launcher, web: HttpPeer, ca: trustme.CA, certs: dict[str, str], tmp_path: Path
) -> None:
    """Plaintext to TLS, a wrong CA, an expired certificate, a wrong WebSocket path: each one
    log line and a close; the healthy tunnel keeps answering throughout."""
    tls = {"certFile": certs["cert"], "keyFile": certs["key"]}
    server = _server(burrow, "wss", "tunnel", tls)
    relay = listener_address(server, "relay")
    entry = listener_address(server, "entrypoint")
    healthy = _client(burrow, server, web, "wss", "tunnel", _secure(certs))
    healthy.wait_log(r"tunnel\.up", timeout=UP)
    wait_healthy(entry, UP)

    # 1. plaintext on the TLS port
    with socket.create_connection(relay, timeout=5.0) as sock:
        sock.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _closed(sock)
    server.wait_log(r"relay\.rejected.*not TLS: the peer sent plaintext", timeout=UP)
    assert http_request(entry, HEALTHY_HOST) == (200, HEALTHY_BODY)

    # 2. a client that trusts another CA refuses the server, and the server logs it
    wrong = _client(burrow, server, web, "wss", "tunnel",
                    {"caFile": certs["other_ca"], "secure": True, "serverName": NAME},
                    name="wrongca")  # fmt: skip
    wrong.wait_log(r"tunnel\.dial_failed.*server certificate refused", timeout=UP)
    server.wait_log(r"relay\.rejected.*(refused our certificate|after our certificate)", timeout=UP)
    assert http_request(entry, HEALTHY_HOST) == (200, HEALTHY_BODY)

    # 3. a WebSocket upgrade to the wrong path: 404 and a close
    ctx = ssl.create_default_context(cafile=certs["ca"])
    raw = socket.create_connection(relay, timeout=5.0)
    with ctx.wrap_socket(raw, server_hostname=NAME) as sock:
        sock.sendall(
            b"GET /nope HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        status, _ = read_http_response(sock)
        assert status == 404
    server.wait_log(r"relay\.rejected.*WebSocket upgrade to the wrong path '/nope'", timeout=UP)
    assert http_request(entry, HEALTHY_HOST) == (200, HEALTHY_BODY)


def test_expired_server_certificate(
    burrow: Launcher, web: HttpPeer, ca: trustme.CA, certs: dict[str, str], tmp_path: Path
) -> None:
    """A server with an expired certificate: a verifying client refuses it with a clear line."""
    cert, key = _expired(ca, tmp_path)
    server = _server(burrow, "tls", "relay", {"certFile": cert, "keyFile": key})
    client = _client(burrow, server, web, "tls", "relay", _secure(certs))
    client.wait_log(r"tunnel\.dial_failed.*certificate has expired", timeout=UP)
    server.wait_log(r"relay\.rejected.*(refused our certificate|after our certificate)", timeout=UP)
    # An insecure client (gost's default) still connects: the server keeps serving.
    ok = _client(burrow, server, web, "tls", "relay", None, name="insecure")
    ok.wait_log(r"tunnel\.up", timeout=UP)
    wait_healthy(listener_address(server, "entrypoint"), UP)


def test_expired_client_certificate(
    burrow: Launcher, web: HttpPeer, ca: trustme.CA, certs: dict[str, str], tmp_path: Path
) -> None:
    """A client certificate that has expired is refused by a caFile listener, with the reason."""
    cert, key = _expired(ca, tmp_path)
    tls = {"certFile": certs["cert"], "keyFile": certs["key"], "caFile": certs["ca"]}
    server = _server(burrow, "tls", "tunnel", tls)
    client = _client(
        burrow, server, web, "tls", "tunnel", _secure(certs, certFile=cert, keyFile=key)
    )
    server.wait_log(
        r"relay\.rejected.*client certificate refused: certificate has expired", timeout=UP
    )
    client.wait_log(r"tunnel\.(bind|dial)_failed", timeout=UP)


@pytest.mark.parametrize("transport", ["tls", "wss"])
def test_udp_over_transport(
    burrow: Launcher, udp_echo_peer: UdpEchoPeer, certs: dict[str, str], transport: str
) -> None:
    """An rudp tunnel client and a udp visitor dial the server over tls / wss."""
    server = _server(
        burrow, transport, "tunnel", {"certFile": certs["cert"], "keyFile": certs["key"]}
    )
    relay = server.listener("relay").address
    ccfg = client_config(relay, TUNNEL_A, [client_service(
        "u", [forward_node("echo", udp_echo_peer.address)], udp=True)], dialect="tunnel")  # fmt: skip
    _node_dialer(ccfg, transport, _secure(certs))
    burrow.start("client", ccfg).wait_log(r"tunnel\.up", timeout=UP)
    vcfg = visitor_config(relay, TUNNEL_A, [visitor_service(
        "v", target="echo.example.com:0", udp=True, keepalive=True)], dialect="tunnel")  # fmt: skip
    _node_dialer(vcfg, transport, _secure(certs))
    item = burrow.start("visitor", vcfg).listener("visitor", udp=True)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(1.0)

        def probe() -> bytes | None:
            sock.sendto(b"hello", (item.host, item.port))
            data, _ = sock.recvfrom(65535)
            return data if data == b"hello" else None

        wait_for("first echo over " + transport, probe, UP)
        sock.settimeout(3.0)
        for size in (1, 1400, 65000):
            payload = bytes([size % 251]) * size
            sock.sendto(payload, (item.host, item.port))
            assert sock.recvfrom(65535)[0] == payload


@pytest.mark.parametrize(
    ("transport", "reason"),
    [("tls", "TLS handshake timed out"), ("ws", "WebSocket upgrade timed out")],
)
def test_silent_peer_is_closed(
    burrow: Launcher, web: HttpPeer, certs: dict[str, str], transport: str, reason: str
) -> None:
    """A peer that connects and says nothing is closed at handshakeTimeout, with a log line;
    a GET without an upgrade on a ws port gets 400; the tunnel keeps answering."""
    cfg = server_config([(".example.com", TUNNEL_A)], dialect="tunnel")
    listener: dict[str, Any] = {"type": transport, "metadata": {"handshakeTimeout": "1s"}}
    if transport == "tls":
        listener["tls"] = {"certFile": certs["cert"], "keyFile": certs["key"]}
    cfg["services"][0]["listener"] = listener
    server = burrow.start("server", cfg)
    client = _client(burrow, server, web, transport, "tunnel",
                     _secure(certs) if transport == "tls" else None)  # fmt: skip
    client.wait_log(r"tunnel\.up", timeout=UP)
    relay = listener_address(server, "relay")
    with socket.create_connection(relay, timeout=5.0) as sock:
        assert _closed(sock)  # within the socket timeout: the server's 1 s deadline closed it
    server.wait_log(r"relay\.rejected.*" + reason, timeout=UP)
    if transport == "ws":
        with socket.create_connection(relay, timeout=5.0) as sock:
            sock.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_http_response(sock)[0] == 400
        server.wait_log(r"relay\.rejected.*bad WebSocket upgrade request", timeout=UP)
    wait_healthy(listener_address(server, "entrypoint"), UP)


def test_cap_counts_connections_still_in_the_tls_handshake(
    burrow: Launcher, web: HttpPeer, certs: dict[str, str]
) -> None:
    """max_connections_per_source counts a TLS connection from accept, not from the end of
    its handshake: silent peers cannot pile up past the cap (the Burrow TOML written by
    `burrow convert` keeps listener.tls)."""
    cfg = server_config([(".example.com", TUNNEL_A)], dialect="tunnel")
    cfg["services"][0]["listener"] = {
        "type": "tls", "tls": {"certFile": certs["cert"], "keyFile": certs["key"]},
    }  # fmt: skip
    server = burrow.start(
        "server", with_limits(burrow, "server", cfg, max_connections_per_source=3)
    )
    client = _client(burrow, server, web, "tls", "tunnel", _secure(certs))
    client.wait_log(r"tunnel\.up", timeout=UP)  # connection 1 of 3 from 127.0.0.1
    relay = listener_address(server, "relay")
    held = [socket.create_connection(relay, timeout=5.0) for _ in range(2)]  # 2 and 3, silent
    try:
        with socket.create_connection(relay, timeout=5.0) as extra:
            assert _closed(extra)
        server.wait_log(r"inbound\.refused .*max_connections_per_source", timeout=UP)
    finally:
        for sock in held:
            sock.close()
    wait_healthy(listener_address(server, "entrypoint"), UP)
