"""Global fixtures: where the captured vectors live, and the seed configs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def shared_dir() -> Path:
    """The steering ``shared/`` folder: env BURROW_SHARED, else ``<repo>/../shared``."""
    return Path(os.environ.get("BURROW_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def vectors_dir() -> Path:
    """Captured gost wire vectors; a missing folder fails the test instead of skipping it."""
    path = shared_dir() / "vectors"
    if not (path / "relay-rc10").is_dir() or not (path / "tunnel-v3.2.6").is_dir():
        pytest.fail(f"wire vectors not found at {path}: set BURROW_SHARED to the shared/ folder")
    return path


@pytest.fixture(scope="session")
def seed_dir() -> Path:
    """The seed document and its configs; missing means fail, not skip."""
    path = shared_dir() / "seed"
    if not (path / "configs").is_dir():
        pytest.fail(f"seed configs not found at {path}: set BURROW_SHARED to the shared/ folder")
    return path
