"""A TLS relay port without certFile serves one generated certificate from every worker.

The supervisor makes it once (burrow.supervisor.relay_cert) and the plan carries it, so a client
pinning the server's certificate is accepted by whichever worker takes the connection, and a
SIGHUP keeps the same certificate.
"""

from __future__ import annotations

import re
import signal
import socket
import ssl

from e2e.conftest import TUNNEL_A
from e2e.harness import BurrowProcess, Launcher, server_config, wait_for

UP = 8.0
WORKERS = 2
_WORKER = re.compile(r"\b(worker-\d+) relay\.rejected")


def _peer_cert(addr: str, probe: bytes) -> bytes:
    """The DER certificate the relay port shows; ``probe`` (not a relay request) follows."""
    host, port = addr.rsplit(":", 1)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the point is the pin, not the chain
    raw = socket.create_connection((host, int(port)), timeout=5.0)
    with ctx.wrap_socket(raw, server_hostname="gost.run") as tls:
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        tls.sendall(probe)
        try:
            tls.recv(64)  # the close after the rejection, or a short reply
        except (OSError, ssl.SSLError):
            pass
        return der


def _workers_seen(server: BurrowProcess) -> set[str]:
    return {m.group(1) for line in server.stderr().splitlines() if (m := _WORKER.search(line))}


def _collect(server: BurrowProcess, addr: str) -> set[bytes]:
    """Certificates seen until connections have landed on every worker (each rejected once)."""
    seen: set[bytes] = set()

    def probe() -> bool | None:
        seen.add(_peer_cert(addr, b"\xffnot a relay request\r\n"))
        return True if len(_workers_seen(server)) >= WORKERS else None

    wait_for("a rejected connection on every worker", probe, timeout=UP * 2)
    return seen


def test_generated_certificate_is_one_per_process_group(burrow: Launcher) -> None:
    cfg = server_config([(".example.com", TUNNEL_A)], dialect="tunnel")
    cfg["services"][0]["listener"] = {"type": "tls"}
    server = burrow.start("server", cfg, workers=WORKERS)
    server.wait_log(r"tls\.self_signed", timeout=UP)
    relay = server.listener("relay").address
    certs = _collect(server, relay)
    assert len(certs) == 1, "workers served different certificates"
    # One warning for the group (it was one per worker when each generated its own).
    assert server.stderr().count("tls.self_signed") == 1
    server.proc.send_signal(signal.SIGHUP)
    server.wait_log(r"reload\.done", timeout=UP)
    assert _peer_cert(relay, b"\xff\r\n") in certs
    assert "PRIVATE KEY" not in server.stderr() + server.stdout()
