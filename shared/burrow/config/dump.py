"""A Config back into Burrow TOML (what ``burrow convert`` prints)."""

from __future__ import annotations

from typing import Any

import msgspec
import tomli_w

from .schema import Config

HEADER = "# Burrow configuration (converted; load with: burrow -C FILE)\n"


def to_builtins(config: Config) -> dict[str, Any]:
    """Plain data without default values (the shape TOML and YAML files are written in)."""
    data: dict[str, Any] = msgspec.to_builtins(config)
    if not data.get("burrow"):
        data.pop("burrow", None)  # all-default settings: no [burrow] table
    return data


def to_toml(config: Config, *, header: str = HEADER) -> str:
    """Burrow TOML that loads back into an equal Config."""
    return header + tomli_w.dumps(to_builtins(config))
