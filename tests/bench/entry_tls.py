"""Entry-point TLS termination against plain HTTP, same entry point, tunnel and backend.

Run on demand (never by CI): ``PYTHONPATH=shared:worker:supervisor:tests python3
tests/bench/entry_tls.py``. One server worker, one tunnel client, a keep-alive backend; the load
is a blocking Python client (its own TLS costs as much as Burrow's, so the ratios are a floor):
sequential keep-alive requests/s, 1 MiB downloads (MiB/s), and a new connection per request.
"""

from __future__ import annotations

import os
import socket
import ssl
import sys
import tempfile
import time
from pathlib import Path

import trustme

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from e2e.harness import Launcher, client_config, client_service, server_config
from e2e.peers import TcpPeer, read_http_response

TUNNEL = "0b8e2c1a-6f3d-4e5a-9b7c-1d2e3f4a5b6c"
BODY = os.urandom(1 << 20)
GET = b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n"
BIG = b"GET /big HTTP/1.1\r\nHost: app.test\r\n\r\n"


def serve(conn: socket.socket) -> None:
    buf = b""
    while True:
        while b"\r\n\r\n" not in buf:
            chunk = conn.recv(65536)
            if not chunk:
                return
            buf += chunk
        head, _, buf = buf.partition(b"\r\n\r\n")
        body = BODY if b" /big " in head else b"ok"
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="burrow-entry-tls-"))
    ca = trustme.CA()
    leaf = ca.issue_cert("app.test")
    leaf.cert_chain_pems[0].write_to_path(str(tmp / "a.crt"))
    leaf.private_key_pem.write_to_path(str(tmp / "a.key"))
    cert = {"hostname": "app.test", "cert": str(tmp / "a.crt"), "key": str(tmp / "a.key")}
    md = {"entrypoint.tls.certs": [cert]}
    launcher = Launcher(tmp)
    backend = TcpPeer(serve)
    try:
        cfg = server_config([("app.test", TUNNEL)], dialect="tunnel", metadata=md)
        server = launcher.start("server", cfg)
        svc = client_service("s", [{"name": "n", "addr": backend.address}])
        relay = server.listener("relay").address
        client = launcher.start("client", client_config(relay, TUNNEL, [svc], dialect="tunnel"))
        client.wait_log(r"tunnel\.up", timeout=20)
        ep = server.listener("entrypoint")
        addr = (ep.host, ep.port)
        ctx = ssl.create_default_context()
        ca.configure_trust(ctx)

        def connect(tls: bool) -> socket.socket:
            sock = socket.create_connection(addr, timeout=10)
            return ctx.wrap_socket(sock, server_hostname="app.test") if tls else sock

        for tls in (False, True):
            sock = connect(tls)
            for _ in range(50):
                sock.sendall(GET)
                read_http_response(sock)
            start = time.perf_counter()
            for _ in range(2000):
                sock.sendall(GET)
                read_http_response(sock)
            rps = 2000 / (time.perf_counter() - start)
            start = time.perf_counter()
            for _ in range(100):
                sock.sendall(BIG)
                assert len(read_http_response(sock)[1]) == len(BODY)
            mibs = 100 / (time.perf_counter() - start)
            sock.close()
            start = time.perf_counter()
            for _ in range(200):
                with connect(tls) as one:
                    one.sendall(GET)
                    read_http_response(one)
            cps = 200 / (time.perf_counter() - start)
            name = "tls-terminated" if tls else "plain-http"
            print(
                f"{name:15s} keep-alive {rps:6.0f} req/s  download {mibs:6.1f} MiB/s"
                f"  new connection {cps:5.0f} req/s"
            )
    finally:
        launcher.stop_all()
        backend.close()


if __name__ == "__main__":
    main()
