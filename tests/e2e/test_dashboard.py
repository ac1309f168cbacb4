"""The dashboard at `/` on the admin endpoint, in a real headless Chromium (issue 13 item 4).

Topology: a 2-worker server with the admin endpoint; tunnel A has two clients (one per dialect),
tunnel B one; an HTTP peer behind them reads POST bodies. The page must show the tunnels and
connectors that /api/tunnels and `burrow status --json` show, its traffic figure for A must move
while traffic flows through the entry point, a request the entry point cannot route must appear
under recent errors, and with a token the page asks for it first.

Chromium is Debian's (/usr/bin/chromium, installed by .ci/run), driven by Playwright's Python
API (its own driver; no Playwright browser download).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any, Self

import pytest
from e2e.conftest import TUNNEL_A, TUNNEL_B
from e2e.harness import (
    BurrowProcess,
    Launcher,
    client_config,
    client_service,
    forward_node,
    server_config,
    subprocess_env,
    wait_for,
)
from e2e.peers import TcpPeer
from e2e.test_admin import TOKEN, admin_address, api, bulk_peer, post  # noqa: F401 - fixture
from e2e.topology import listener_address as addr
from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, sync_playwright

pytestmark = pytest.mark.e2e

CHROMIUM = os.environ.get("BURROW_CHROMIUM", "/usr/bin/chromium")
# Headless in a closed network: nothing in the background may try to reach the internet.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-proxy-server", "--disable-extensions", "--disable-default-apps",
]  # fmt: skip
UP_TIMEOUT = 15.0
STATS_TIMEOUT = 10.0
PAGE_TIMEOUT_MS = 10_000
HOST_A = "a.example.com"
HOST_B = "b.example.com"
CHUNK = 256 * 1024
# Uploads stay small: what the entry point reads before routing travels with a handoff to the
# worker holding the tunnel, and that prefix is capped (MAX_HANDOFF_PREFIX).
UPLOAD = 8 * 1024

# Tunnel ID -> connector IDs, as the page shows them.
DOM_CONNECTORS = """() => Object.fromEntries(
  [...document.querySelectorAll('article.tunnel')].map((t) => [
    t.dataset.tunnelId,
    [...t.querySelectorAll('tr.connector')].map((c) => c.dataset.connectorId).sort(),
  ]))"""
TRAFFIC = """(id) => {
  const t = document.querySelector(`article.tunnel[data-tunnel-id="${id}"]`);
  if (!t) return null;
  return {bytes: Number(t.querySelector('.total').dataset.bytes),
          bps: Number(t.querySelector('.rate').dataset.bps),
          bars: Number(t.querySelector('svg.spark').dataset.bars)};
}"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, with a fresh profile (Playwright makes a temporary one)."""
    assert os.access(CHROMIUM, os.X_OK), f"{CHROMIUM} missing: apt-get install chromium"
    with sync_playwright() as pw:
        yield _launch(pw)


def _launch(pw: Playwright) -> Browser:
    return pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=30_000)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A new tab (own sessionStorage) that fails the test on any script error or CSP report."""
    context = browser.new_context()
    tab = context.new_page()
    tab.set_default_timeout(PAGE_TIMEOUT_MS)
    problems: list[str] = []

    def on_console(msg: ConsoleMessage) -> None:
        # A 401 the page expects shows up as a failed resource load; anything else is a defect.
        if msg.type == "error" and "401" not in msg.text:
            problems.append(msg.text)

    tab.on("console", on_console)
    tab.on("pageerror", lambda exc: problems.append(repr(exc)))
    yield tab
    context.close()
    assert not problems, problems


def start_server(burrow: Launcher, extra: dict[str, Any] | None = None) -> BurrowProcess:
    config = server_config([(HOST_A, TUNNEL_A), (HOST_B, TUNNEL_B)])
    config["burrow"] = {"admin": "127.0.0.1:0", **(extra or {})}
    return burrow.start("server", config, workers=2)


def start_client(
    burrow: Launcher, name: str, relay: str, tunnel: str, peer: TcpPeer, dialect: str = "relay"
) -> None:
    nodes = [forward_node("web", peer.address)]
    config = client_config(relay, tunnel, [client_service(name, nodes)], dialect=dialect)
    burrow.start(name, config).wait_log(r"tunnel\.up", timeout=UP_TIMEOUT)


def api_connectors(admin: str, token: str | None = None) -> dict[str, list[str]]:
    rows = api(admin, "/api/tunnels", token)["tunnels"]
    return {t["tunnel_id"]: sorted(c["connector_id"] for c in t["connectors"]) for t in rows}


def wait_connectors(admin: str, count: int, token: str | None = None) -> dict[str, list[str]]:
    """/api/tunnels once it has ``count`` connectors (workers report once a second)."""

    def probe() -> dict[str, list[str]] | None:
        got = api_connectors(admin, token)
        return got if sum(map(len, got.values())) == count else None

    return wait_for(f"{count} connectors in /api/tunnels", probe, STATS_TIMEOUT)


def wait_dom(page: Page, want: dict[str, list[str]]) -> None:
    """Until the page shows exactly the tunnels and connectors of ``want``."""
    page.wait_for_function(
        f"(want) => JSON.stringify(({DOM_CONNECTORS})()) === JSON.stringify(want)",
        arg=dict(sorted(want.items())),
        polling=100,
    )


class Pusher:
    """POSTs through the entry point on a thread until stopped: live traffic for tunnel A."""

    def __init__(self, entry: tuple[str, int]) -> None:
        self.entry = entry
        self.sent = 0
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15.0)
        assert not self._thread.is_alive()
        assert not self.errors, self.errors

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                assert post(self.entry, HOST_A, UPLOAD, CHUNK) == 200
                self.sent += UPLOAD + CHUNK
        except BaseException as exc:  # noqa: BLE001 - reported by __exit__
            self.errors.append(exc)


def unroutable(entry: tuple[str, int]) -> None:
    """One request for a host no ingress rule knows: the entry point answers 502."""
    with socket.create_connection(entry, timeout=5.0) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: nobody.example.com\r\n\r\n")
        sock.settimeout(5.0)
        assert sock.recv(64).startswith(b"HTTP/1.1 502")


def test_dashboard_shows_tunnels_connectors_traffic_and_errors(
    burrow: Launcher,
    bulk_peer: TcpPeer,  # noqa: F811 - the fixture imported from test_admin
    page: Page,
) -> None:
    server = start_server(burrow)
    relay = server.listener("relay").address
    start_client(burrow, "client-a1", relay, TUNNEL_A, bulk_peer)
    start_client(burrow, "client-a2", relay, TUNNEL_A, bulk_peer, dialect="tunnel")
    start_client(burrow, "client-b", relay, TUNNEL_B, bulk_peer)
    server.wait_log(r"tunnel\.up", timeout=UP_TIMEOUT, count=3)
    admin = admin_address(server)
    want = wait_connectors(admin, 3)
    assert sorted(want) == sorted([TUNNEL_A, TUNNEL_B]) and len(want[TUNNEL_A]) == 2

    response = page.goto(f"http://{admin}/")
    assert response is not None and response.status == 200
    assert "default-src 'self'" in response.headers["content-security-policy"]
    wait_dom(page, want)

    # The same as `burrow status --json` and the connectors the server logged.
    out = subprocess.run(
        [sys.executable, "-m", "burrow.supervisor", "status", "--admin", admin, "--json"],
        capture_output=True, env=subprocess_env(), timeout=30, check=True,
    )  # fmt: skip
    status = json.loads(out.stdout)
    shown = {t["tunnel_id"]: sorted(c["connector_id"] for c in t["connectors"])
             for t in status["tunnels"]}  # fmt: skip
    assert shown == want
    logged = set(re.findall(r"tunnel\.up tunnel=(\w+) connector=(\S+)", server.stderr()))
    assert {(t[:8], c) for t, cs in want.items() for c in cs} == logged
    dialects = page.eval_on_selector_all(
        f'article[data-tunnel-id="{TUNNEL_A}"] tr.connector td:nth-child(5)',
        "(cells) => cells.map((c) => c.textContent).sort()",
    )
    assert dialects == ["relay", "tunnel"]

    # Worker health: both workers, as /api/workers has them.
    workers = {str(w["pid"]) for w in api(admin, "/api/workers")["workers"]}
    page.wait_for_function(
        "(n) => [...document.querySelectorAll('tr.worker td.health-ok')].length === n",
        arg=2,
        polling=100,
    )
    assert set(page.eval_on_selector_all("tr.worker", "(r) => r.map((x) => x.dataset.pid)")) == (
        workers
    )

    # Live traffic: while POSTs flow through the entry point, tunnel A's figures move.
    before = page.evaluate(TRAFFIC, TUNNEL_A)
    idle = page.evaluate(TRAFFIC, TUNNEL_B)
    assert before is not None and idle is not None
    with Pusher(addr(server, "entrypoint")):
        # Well above what smux keepalives alone could show.
        page.wait_for_function(
            f"([id, floor]) => {{ const t = ({TRAFFIC})(id);"
            " return t && t.bytes >= floor && t.bps > 65536 && t.bars > 0; }",
            arg=[TUNNEL_A, before["bytes"] + 4 * CHUNK],
            polling=100,
        )
    after = page.evaluate(TRAFFIC, TUNNEL_B)
    assert after["bytes"] - idle["bytes"] < 1024  # B carried nothing but keepalives

    # Recent errors: a request the entry point cannot route shows up (reported by a worker).
    unroutable(addr(server, "entrypoint"))
    page.wait_for_function(
        "() => [...document.querySelectorAll('#events li strong')]"
        ".some((s) => s.textContent === 'entry_502')",
        polling=100,
    )
    assert page.text_content('#counters [data-key="entry_502"]') == "entry 502 1"

    # A worker killed and replaced: its exit is a recent error, the new pid shows as healthy.
    victim = min(int(p) for p in workers)
    subprocess.run(["kill", "-KILL", str(victim)], check=True, timeout=5)
    server.wait_log(r"worker\.ready", timeout=UP_TIMEOUT, count=3)  # its replacement
    page.wait_for_function(
        "() => [...document.querySelectorAll('#events li strong')]"
        ".some((s) => s.textContent === 'worker.exited')",
        polling=100,
    )
    fresh = {str(w["pid"]) for w in api(admin, "/api/workers")["workers"]}
    assert str(victim) not in fresh and len(fresh) == 2
    page.wait_for_function(
        "(pids) => JSON.stringify([...document.querySelectorAll('tr.worker td.health-ok')]"
        ".map((td) => td.parentNode.dataset.pid).sort()) === JSON.stringify(pids)",
        arg=sorted(fresh),
        polling=100,
    )
    assert page.text_content('#overview [data-key="restarts"] .value') == "1"


def test_dashboard_with_a_token_asks_for_it(
    burrow: Launcher,
    bulk_peer: TcpPeer,  # noqa: F811 - the fixture imported from test_admin
    page: Page,
) -> None:
    server = start_server(burrow, {"admin_token": TOKEN})
    start_client(burrow, "client-a", server.listener("relay").address, TUNNEL_A, bulk_peer)
    admin = admin_address(server)
    want = wait_connectors(admin, 1, TOKEN)

    page.goto(f"http://{admin}/")
    page.wait_for_selector("#login", state="visible")
    assert page.is_hidden("#main")
    assert page.locator("article.tunnel").count() == 0

    page.fill("#token", "not-the-token-not-the-token")
    page.click("#login-form button")
    page.wait_for_selector("#login-error", state="visible")
    assert page.text_content("#login-error") == "That token was refused."

    page.fill("#token", TOKEN)
    page.click("#login-form button")
    wait_dom(page, want)
    assert page.is_hidden("#login")
    # Kept for this tab only: a reload goes straight to the data.
    assert page.evaluate("() => sessionStorage.getItem('burrow.admin.token')") == TOKEN
    page.reload()
    wait_dom(page, want)

    # A failed reload (the config file is gone) is a recent error on the page.
    (burrow.tmp_path / "server.yaml").unlink()
    server.proc.send_signal(signal.SIGHUP)
    server.wait_log(r"reload\.failed", timeout=UP_TIMEOUT)
    page.wait_for_function(
        "() => [...document.querySelectorAll('#events li.level-error strong')]"
        ".some((s) => s.textContent === 'reload.failed')",
        polling=100,
    )
    assert page.text_content('#counters [data-key="reloads_failed"]') == "reloads failed 1"
    assert TOKEN not in server.stderr() + server.stdout() + page.content()
