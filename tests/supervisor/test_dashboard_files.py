"""The dashboard's static files: packaged, found through importlib.resources, self-contained
(no inline script, nothing from another origin, no HTML built from data), and served by the
admin API without a token while the data behind them still needs one."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest

from burrow.admin.api import AdminApi
from burrow.supervisor.dashboard import CSP, FILES, Dashboard, read_file

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize("name", sorted(FILES))
def test_every_file_is_found_as_a_package_resource(name: str) -> None:
    assert len(read_file(name)) > 100 or name == "icon.svg"


def test_the_page_loads_only_its_own_files() -> None:
    html = read_file("index.html").decode()
    refs = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert refs and all(r.startswith("/ui/") and r[4:] in FILES for r in refs), refs
    # Every <script> has a src and no body: the CSP allows no inline script.
    assert re.findall(r"<script[^>]*>(.*?)</script>", html, re.DOTALL) == [""]
    assert not re.search(r"\son[a-z]+=", html)  # no inline event handlers
    assert "style=" not in html


@pytest.mark.parametrize("name", sorted(FILES))
def test_nothing_comes_from_elsewhere(name: str) -> None:
    text = read_file(name).decode()
    urls = re.findall(r"(?:https?:)?//[\w.-]+\.[a-z]{2,}", text)
    assert urls in ([], ["http://www.w3.org"]), urls  # the SVG namespace is a name, not a fetch
    assert "@import" not in text and "url(" not in text


def test_script_never_builds_html_from_data() -> None:
    js = read_file("dashboard.js").decode()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in js, sink
    assert ".style" not in js  # the CSP has no 'unsafe-inline' for styles either


def test_wheel_ships_the_package_directories_whole() -> None:
    # Hatch puts every file under a listed package into the wheel (.py or not) unless excluded.
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    wheel = config["tool"]["hatch"]["build"]["targets"]["wheel"]
    assert "supervisor/burrow" in wheel["packages"]
    assert "exclude" not in wheel and "only-include" not in wheel
    ignored = (ROOT / ".gitignore").read_text() if (ROOT / ".gitignore").exists() else ""
    assert not re.search(r"^(ui|\*\.(js|css|html|svg))/?$", ignored, re.MULTILINE)


def test_dashboard_paths() -> None:
    pages = Dashboard()
    status, ctype, body = pages("/")  # type: ignore[misc]
    assert (status, ctype) == (200, "text/html; charset=utf-8") and b"<main" in body
    assert pages("/ui/dashboard.js")[:2] == (200, "text/javascript; charset=utf-8")  # type: ignore[index]
    assert pages("/ui/../pyproject.toml")[0] == 404  # type: ignore[index]
    assert pages("/ui/") is not None and pages("/ui/")[0] == 404  # type: ignore[index]
    assert pages("/api/tunnels") is None
    assert "default-src 'self'" in CSP and "unsafe" not in CSP


def test_page_needs_no_token_but_the_data_does() -> None:
    api = AdminApi(None, lambda: ("text/plain", b""), token=TOKEN, pages=Dashboard())  # type: ignore[arg-type]
    assert api.answer("GET", "/", None)[0] == 200
    assert api.answer("GET", "/ui/dashboard.css?v=1", None)[0] == 200
    assert api.answer("GET", "/api/events", None)[0] == 401
    status, _, body = api.answer("GET", "/api/events", f"Bearer {TOKEN}")
    assert status == 200 and json.loads(body) == {"events": [], "last": 0, "dropped": 0}
    assert api.answer("POST", "/", None)[0] == 405
