"""AdminServer: the admin endpoint's HTTP/1.1 server, on a thread of its own.

A thread, not the supervisor's poll loop: a slow or stuck HTTP client must never delay a
heartbeat check or a restart, and the same server can be hosted by any process that has an
:class:`~burrow.admin.model.AdminState` (the supervisor's StatsBook today; a one-process tunnel
client needs only to provide one). Every request is answered by ``burrow.admin.api`` and the
connection closed; the token, when set, is never logged.
"""

from __future__ import annotations

import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from burrow.admin.api import AdminApi
from burrow.admin.events import EventRing
from burrow.admin.model import AdminState
from burrow.admin.prom import make_renderer
from burrow.common.logfmt import event

from .dashboard import CSP, Dashboard

log = logging.getLogger("burrow.admin")

# A client that sends nothing for this long is dropped (a thread is held per connection).
REQUEST_TIMEOUT = 5.0
# Concurrent requests; past this a connection gets 503 at once (a scrape needs one).
MAX_CONCURRENT = 16


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    api: AdminApi
    slots: threading.BoundedSemaphore


class _V6Server(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = REQUEST_TIMEOUT
    protocol_version = "HTTP/1.1"
    server_version = "burrow-admin"
    sys_version = ""

    def _serve(self) -> None:
        if not self.server.slots.acquire(blocking=False):
            return self._send(503, "application/json", b'{"error":"busy"}')
        try:
            status, ctype, body = self.server.api.answer(
                self.command, self.path, self.headers.get("Authorization")
            )
        except Exception as exc:  # noqa: BLE001 - one bad request must not end the server
            event(log, logging.WARNING, "admin.error", path=self.path[:200], error=repr(exc))
            status, ctype, body = 500, "application/json", b'{"error":"internal"}'
        finally:
            self.server.slots.release()
        self._send(status, ctype, body)

    def _send(self, status: int, ctype: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Connection", "close")
        if status == 401:
            self.send_header("WWW-Authenticate", 'Bearer realm="burrow"')
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.close_connection = True

    do_GET = _serve
    do_HEAD = _serve
    do_POST = _serve
    do_PUT = _serve
    do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet by default; requests are not worth a line each


class AdminServer:
    """Binds ``host:port`` and serves ``state`` until :meth:`close`.

    ``events`` feeds ``/api/events``; ``dashboard`` serves the page at ``/`` (docs/admin.md).
    """

    def __init__(
        self,
        state: AdminState,
        host: str,
        port: int,
        *,
        token: str | None = None,
        metrics_path: str = "/metrics",
        events: EventRing | None = None,
        dashboard: bool = True,
    ) -> None:
        cls = _V6Server if ":" in host else _Server
        pages = Dashboard() if dashboard else None  # before binding: a missing file raises
        self._httpd = cls((host, port), _Handler)  # OSError when the address is taken
        self._httpd.api = AdminApi(
            state,
            make_renderer(state.snapshot),
            token=token,
            metrics_path=metrics_path,
            events=events,
            pages=pages,
        )
        self._httpd.slots = threading.BoundedSemaphore(MAX_CONCURRENT)
        self.host = host
        self.port = self._httpd.server_address[1]
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        """``host:port`` actually bound (the real port when 0 was asked for)."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def start(self) -> None:
        """Serve on a daemon thread."""
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.5}, name="admin-http"
        )
        self._thread.daemon = True
        self._thread.start()

    def close(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=2.0)
        self._httpd.server_close()
