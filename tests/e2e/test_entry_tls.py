"""TLS at the entry point (issue 12, item 4), real processes.

app.test has a certificate (a file pair) and *.wild.test one from a certificate directory: the
entry point terminates TLS and the backend, a tiny HTTP server recording request heads, sees
plain HTTP with the forwarding headers. plain.test has none: SNI passthrough to a TLS backend,
as before. The server runs two workers, so terminated connections are also handed over.
"""

from __future__ import annotations

import hashlib
import signal
import socket
import ssl
import subprocess
import threading
from pathlib import Path
from typing import Any

import trustme
from cryptography import x509

from .harness import BurrowProcess, Launcher, client_config, client_service, server_config
from .peers import TcpPeer, TlsPeer, header_value, read_http_head, read_http_response
from .topology import listener_address

T_APP = "0b8e2c1a-6f3d-4e5a-9b7c-1d2e3f4a5b6c"
T_PLAIN = "7c6b5a4f-3e2d-4c1b-8a9f-0e1d2c3b4a59"
UP = 20.0
IO = 10.0
BIG = bytes(range(256)) * (16 * 1024)  # 4 MiB


class HeadRecorder(TcpPeer):
    """HTTP/1.1 keep-alive backend: answers each request with the head it received."""

    def __init__(self) -> None:
        self.heads: list[bytes] = []
        self.first_bytes: list[bytes] = []
        self.lock = threading.Lock()
        super().__init__(self._serve)

    def _serve(self, conn: socket.socket) -> None:
        buf = b""
        while True:
            while b"\r\n\r\n" not in buf:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                if not buf:
                    with self.lock:
                        self.first_bytes.append(chunk[:3])
                buf += chunk
            head, _, buf = buf.partition(b"\r\n\r\n")
            with self.lock:
                self.heads.append(head)
            want = int(header_value(head, "content-length") or 0)
            while len(buf) < want:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buf += chunk
            upload, buf = buf[:want], buf[want:]
            if head.startswith(b"GET /big "):
                body = BIG
            else:
                body = (
                    head + b"\r\n" + (hashlib.sha256(upload).hexdigest().encode() if want else b"")
                )
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))


def write_pair(cert: trustme.LeafCert, crt: Path, key: Path) -> None:
    cert.cert_chain_pems[0].write_to_path(str(crt))
    cert.private_key_pem.write_to_path(str(key))


def client_ctx(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


def open_tls(addr: tuple[str, int], ca: trustme.CA, name: str) -> ssl.SSLSocket:
    raw = socket.create_connection(addr, timeout=IO)
    return client_ctx(ca).wrap_socket(raw, server_hostname=name)


def get(
    tls: ssl.SSLSocket | socket.socket, host: str, path: str = "/", extra: str = ""
) -> tuple[int, bytes]:
    tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode())
    return read_http_response(tls)


def _serial_of(der: bytes) -> int:
    return x509.load_der_x509_certificate(der).serial_number


def hello_for(name: str) -> bytes:
    """A real ClientHello naming ``name`` (from a memory-BIO handshake that goes no further)."""
    obj = ssl.create_default_context().wrap_bio(
        ssl.MemoryBIO(), out := ssl.MemoryBIO(), server_hostname=name
    )
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def start(
    burrow: Launcher, tmp: Path, ca: trustme.CA, backend: HeadRecorder, tls_backend: TlsPeer
) -> tuple[BurrowProcess, Path]:
    write_pair(ca.issue_cert("app.test"), tmp / "app.crt", tmp / "app.key")
    certs = tmp / "certs"
    certs.mkdir()
    write_pair(
        ca.issue_cert("*.wild.test"),
        certs / "_wildcard.wild.test.pem",
        certs / "_wildcard.wild.test-key.pem",
    )
    md: dict[str, Any] = {
        "entrypoint.tls.certs": [
            {
                "hostname": "app.test",
                "cert": str(tmp / "app.crt"),
                "key": str(tmp / "app.key"),
                "redirect": True,
            }
        ],
        "entrypoint.tls.dir": str(certs),
        "entrypoint.tls.handshakeTimeout": "1s",
    }
    rules = [("app.test", T_APP), ("*.wild.test", T_APP), ("plain.test", T_PLAIN)]
    path = burrow.write_yaml("server", server_config(rules, dialect="tunnel", metadata=md))
    server = burrow.start("server", path, workers=2, debug=True)
    relay = server.listener("relay").address
    for name, tunnel, peer in (("app", T_APP, backend), ("plain", T_PLAIN, tls_backend)):
        svc = client_service("s", [{"name": "n", "addr": peer.address}])
        c = burrow.start(name, client_config(relay, tunnel, [svc], dialect="tunnel"))
        c.wait_log(r"tunnel\.up", timeout=UP)
    return server, tmp / "app.crt"


def test_entry_tls_terminates_forwards_passes_through_and_renews(
    burrow: Launcher, tmp_path: Path, ca: trustme.CA
) -> None:
    backend = HeadRecorder()
    tls_backend = TlsPeer("plain", ca, ["plain.test"])
    try:
        server, crt = start(burrow, tmp_path, ca, backend, tls_backend)
        entry = listener_address(server, "entrypoint")
        # Terminated, with forwarding headers; the visitor's own are dropped. Fresh connections
        # land on both workers: the one without the tunnel hands the socket over.
        for i in range(40):
            if i >= 8 and "handoff.received" in server.stderr():
                break
            with open_tls(entry, ca, "app.test") as tls:
                assert tls.selected_alpn_protocol() in (None, "http/1.1")
                status, head = get(tls, "app.test", "/x", "X-Forwarded-For: 6.6.6.6\r\n")
            assert status == 200
            assert head.startswith(b"GET /x HTTP/1.1\r\n"), head
            assert header_value(head, "x-forwarded-for") == "127.0.0.1"
            assert header_value(head, "x-forwarded-proto") == "https"
            assert header_value(head, "forwarded") == "for=127.0.0.1;proto=https;host=app.test"
            assert b"6.6.6.6" not in head
        assert "handoff.received" in server.stderr(), "no connection was handed over"
        assert all(b[:1] == b"G" for b in backend.first_bytes), "the backend got TLS bytes"
        # Large bodies both ways on one connection: flow control, and framing that finds the
        # next head after a 4 MiB upload.
        with open_tls(entry, ca, "app.test") as tls:
            tls.sendall(
                b"POST /up HTTP/1.1\r\nHost: app.test\r\nContent-Length: %d\r\n\r\n" % len(BIG)
                + BIG
            )
            status, body = read_http_response(tls)
            assert status == 200 and body.endswith(hashlib.sha256(BIG).hexdigest().encode())
            assert get(tls, "app.test", "/big") == (200, BIG)
            status, head = get(tls, "app.test", "/next", "X-Forwarded-For: 6.6.6.6\r\n")
            assert head.startswith(b"GET /next ") and b"6.6.6.6" not in head
        # curl with the CA, as an operator would check it.
        ca_file = tmp_path / "ca.pem"
        ca.cert_pem.write_to_path(str(ca_file))
        url = f"https://app.test:{entry[1]}/curl"
        out = subprocess.run(
            [
                "curl",
                "-sS",
                "--cacert",
                str(ca_file),
                "--resolve",
                f"app.test:{entry[1]}:127.0.0.1",
                url,
            ],
            capture_output=True,
            timeout=IO,
            check=True,
        ).stdout
        assert out.startswith(b"GET /curl HTTP/1.1\r\n") and b"X-Forwarded-Proto: https" in out
        # The directory's wildcard certificate; a keep-alive follow-up is rewritten too.
        with open_tls(entry, ca, "a.wild.test") as tls:
            assert get(tls, "a.wild.test")[0] == 200
            status, head = get(tls, "a.wild.test", "/2", "Forwarded: for=6.6.6.6\r\n")
            assert status == 200 and b"6.6.6.6" not in head
            assert header_value(head, "forwarded") == "for=127.0.0.1;proto=https;host=a.wild.test"
        # No certificate: SNI passthrough, the backend's own handshake works end to end.
        with open_tls(entry, ca, "plain.test") as tls:
            assert get(tls, "plain.test") == (200, b"plain host=plain.test sni=plain.test")
        # Plain HTTP for a redirect host: 308 to https, never reaching the tunnel.
        n = len(backend.heads)
        with socket.create_connection(entry, timeout=IO) as sock:
            status, _ = get(sock, "app.test:8080", "/p?q=1")
            assert status == 308
        with socket.create_connection(entry, timeout=IO) as sock:
            sock.sendall(b"GET /p?q=1 HTTP/1.1\r\nHost: app.test\r\n\r\n")
            head = read_http_head(sock)
        assert header_value(head, "location") == "https://app.test/p?q=1"
        assert len(backend.heads) == n

        # Renewal: a long connection open across SIGHUP completes; new ones see the new cert.
        long = open_tls(entry, ca, "app.test")
        old = _serial_of(long.getpeercert(binary_form=True) or b"")
        assert get(long, "app.test", "/before")[0] == 200
        # A 4 MiB response is in flight (partly read, the rest held back by flow control)
        # while the reload happens.
        long.sendall(b"GET /big HTTP/1.1\r\nHost: app.test\r\n\r\n")
        partial = b""
        while b"\r\n\r\n" not in partial:
            chunk = long.recv(65536)
            assert chunk, "closed before the response head"
            partial += chunk
        assert partial.startswith(b"HTTP/1.1 200 ")
        renewed = tmp_path / "new.crt"
        write_pair(ca.issue_cert("app.test"), renewed, tmp_path / "new.key")
        (tmp_path / "new.key").replace(tmp_path / "app.key")
        renewed.replace(crt)
        server.proc.send_signal(signal.SIGHUP)
        server.wait_log(r"reload\.done", timeout=UP)
        head, _, body = partial.partition(b"\r\n\r\n")
        while len(body) < len(BIG):
            chunk = long.recv(1 << 20)
            assert chunk, "the open connection was dropped by the reload"
            body += chunk
        assert body == BIG
        status, head = get(long, "app.test", "/after")
        assert status == 200 and head.startswith(b"GET /after ")
        long.close()
        with open_tls(entry, ca, "app.test") as tls:
            new = _serial_of(tls.getpeercert(binary_form=True) or b"")
            assert get(tls, "app.test")[0] == 200
        assert new != old
    finally:
        backend.close()
        tls_backend.close()


def test_entry_tls_bad_input_is_logged_and_closed(
    burrow: Launcher, tmp_path: Path, ca: trustme.CA
) -> None:
    backend = HeadRecorder()
    tls_backend = TlsPeer("plain", ca, ["plain.test"])
    try:
        server, _ = start(burrow, tmp_path, ca, backend, tls_backend)
        entry = listener_address(server, "entrypoint")
        # Plaintext after a ClientHello for a terminated name: a TLS error, a log line, a close.
        with socket.create_connection(entry, timeout=IO) as sock:
            sock.sendall(hello_for("app.test"))
            sock.sendall(b"\x16\x03\x03\x00\x10GET / HTTP/1.1\r\n\r\n" + b"\x00" * 64)
            while sock.recv(65536):
                pass
        server.wait_log(r"entrypoint\.tls_failed.*host=app\.test", timeout=UP)
        # A handshake that stalls after the ClientHello is cut at the timeout.
        with socket.create_connection(entry, timeout=IO) as sock:
            sock.sendall(hello_for("app.test"))
            while sock.recv(65536):
                pass
        server.wait_log(r"entrypoint\.tls_failed.*handshake timeout", timeout=UP)
        # Unknown SNI, no certificate and no rule: refused, closed.
        try:
            with open_tls(entry, ca, "nope.test") as tls:
                tls.recv(1)
            raise AssertionError("a handshake for an unknown name succeeded")
        except (ssl.SSLError, ConnectionError):
            pass
        server.wait_log(r"entrypoint\.refused.*nope\.test", timeout=UP)
        # A Host that is not the TLS server name: 421 over TLS, nothing reaches the backend.
        n = len(backend.heads)
        with open_tls(entry, ca, "app.test") as tls:
            assert get(tls, "plain.test")[0] == 421
        assert len(backend.heads) == n
        # Other connections keep flowing.
        with open_tls(entry, ca, "app.test") as tls:
            assert get(tls, "app.test")[0] == 200
        with open_tls(entry, ca, "plain.test") as tls:
            assert get(tls, "plain.test")[0] == 200
        # A renewal whose key does not match: the reload is refused, naming the files and the
        # key; the running certificate keeps serving.
        write_pair(ca.issue_cert("app.test"), tmp_path / "x.crt", tmp_path / "app.key")
        server.proc.send_signal(signal.SIGHUP)
        server.wait_log(
            r"reload\.failed.*does not match certificate.*entrypoint\.tls\.certs", timeout=UP
        )
        with open_tls(entry, ca, "app.test") as tls:
            assert get(tls, "app.test")[0] == 200
        assert server.alive()
    finally:
        backend.close()
        tls_backend.close()
