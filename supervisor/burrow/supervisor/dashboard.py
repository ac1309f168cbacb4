"""The dashboard's static files (``ui/`` in this package), served by the admin endpoint.

``/`` is the page, ``/ui/<name>`` its script, style sheet and icon. They are plain files (no
build step, nothing fetched from elsewhere), read once through importlib.resources so they are
found the same way from a source tree and from an installed wheel. They hold no data: the page
asks for the admin token when the API answers 401 and then polls the JSON API with it.
"""

from __future__ import annotations

from importlib import resources

from burrow.admin.api import Answer

# Every file the page needs, with its type; nothing else under /ui/ is served.
FILES = {
    "index.html": "text/html; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
    "icon.svg": "image/svg+xml",
}
# The page loads only its own files and talks only to this origin; no inline script or style.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def read_file(name: str) -> bytes:
    """The bytes of ``ui/<name>`` as packaged (FileNotFoundError when it is missing)."""
    return (resources.files("burrow.supervisor") / "ui" / name).read_bytes()


class Dashboard:
    """Answers ``/`` and ``/ui/<file>``; None for every other path."""

    def __init__(self) -> None:
        self._files = {name: (ctype, read_file(name)) for name, ctype in FILES.items()}

    def __call__(self, path: str) -> Answer | None:
        """The answer for ``path`` when it is one of the dashboard's."""
        if path in ("/", "/index.html"):
            name = "index.html"
        elif path.startswith("/ui/"):
            name = path[len("/ui/") :]
        else:
            return None
        found = self._files.get(name)
        if found is None:
            return 404, "text/plain; charset=utf-8", b"no such file\n"
        ctype, body = found
        return 200, ctype, body
