"""Global fixtures: where the captured vectors and the seed configs live (inside the repo)."""

from __future__ import annotations

from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def vectors_dir() -> Path:
    """Captured gost wire vectors (tests/vectors); a missing folder fails instead of skipping."""
    path = TESTS / "vectors"
    if not (path / "relay-rc10").is_dir() or not (path / "tunnel-v3.2.6").is_dir():
        pytest.fail(f"wire vectors not found at {path}")
    return path


@pytest.fixture(scope="session")
def seed_dir() -> Path:
    """The seed guide and its configs (tests/seed); missing means fail, not skip."""
    path = TESTS / "seed"
    if not (path / "configs").is_dir():
        pytest.fail(f"seed configs not found at {path}")
    return path
