"""The layering rules, checked on the source: sans-IO core, supervisor and worker kept apart."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# shared/ is sans-IO: no event loop, no sockets, no message bus.
SHARED_FORBIDDEN = ("asyncio", "socket", "zmq", "uvloop", "selectors", "ssl")
# The supervisor owns processes and sockets; the worker packages run inside workers.
WORKER_PACKAGES = ("burrow.worker", "burrow.server", "burrow.client", "burrow.net")


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
            for alias in node.names:
                yield node.lineno, f"{node.module}.{alias.name}"


def _sources(root: str) -> list[Path]:
    files = sorted((REPO / root).rglob("*.py"))
    assert files, f"no sources under {root}"
    return files


def _hits(root: str, banned: tuple[str, ...]) -> list[str]:
    return [
        f"{path.relative_to(REPO)}:{line}: imports {name}"
        for path in _sources(root)
        for line, name in _imports(path)
        if any(name == b or name.startswith(b + ".") for b in banned)
    ]


def test_shared_is_sans_io() -> None:
    assert _hits("shared", SHARED_FORBIDDEN) == []


def test_supervisor_never_imports_worker_packages() -> None:
    assert _hits("supervisor", WORKER_PACKAGES) == []


def test_worker_never_imports_the_supervisor() -> None:
    assert _hits("worker", ("burrow.supervisor",)) == []


@pytest.mark.parametrize("root", ["shared", "worker", "supervisor", "tests", "deploy", "docs"])
def test_nothing_points_outside_the_repo(root: str) -> None:
    base = REPO / root
    if not base.exists():
        pytest.fail(f"{root}/ is missing")
    bad = [
        str(p.relative_to(REPO))
        for p in base.rglob("*")
        if p.is_file()
        and p.suffix in {".py", ".md", ".toml", ".yaml", ".yml", ".txt", ".service", ".socket", ""}
        and "../shared" in p.read_text(errors="replace")
        and p.name != "test_layers.py"
    ]
    assert bad == []


# Design documents that live outside this repository; code cites docs/*.md instead.
EXTERNAL_DOCS = (
    "tunnel-mode.md",
    "relay-protocol.md",
    "ingress-and-config.md",
    "transports-and-cluster.md",
    "ARCHITECTURE.md",
    "STYLE.md",
    "spec/",
    "/work/notes",
)


def _external_refs(text: str) -> list[str]:
    return [name for name in EXTERNAL_DOCS if name in text]


@pytest.mark.parametrize("root", ["shared", "worker", "supervisor", "tests"])
def test_no_references_to_documents_outside_the_repo(root: str) -> None:
    """Comments cite docs/*.md, which ship with the code, not design notes a reader cannot open."""
    bad = [
        f"{path.relative_to(REPO)}: {', '.join(found)}"
        for path in _sources(root)
        if path.name != "test_layers.py" and (found := _external_refs(path.read_text()))
    ]
    assert bad == []


def test_external_reference_check_can_fail() -> None:
    assert _external_refs("see tunnel-mode.md §4 and STYLE.md") == ["tunnel-mode.md", "STYLE.md"]
    assert _external_refs("see docs/protocol.md, Per-stream header") == []


def test_ast_walk_sees_imports() -> None:
    """The checker itself finds a banned import (so the tests above can fail)."""
    sample = REPO / "worker" / "burrow" / "worker" / "main.py"
    names = {name for _, name in _imports(sample)}
    assert any(n.startswith(("asyncio", "uvloop")) for n in names)
