"""A Config back into Burrow TOML (what ``burrow convert`` prints)."""

from __future__ import annotations

from typing import Any

import msgspec
import tomli_w

from .schema import Config

HEADER = "# Burrow configuration (converted; load with: burrow -C FILE)\n"
MASK = "********"


def mask_tunnel_secrets(data: dict[str, Any]) -> int:
    """Replace [[tunnels]] passwords by MASK in place; how many were masked.

    Per-tunnel credentials are Burrow's own secrets and never printed; the global gost
    ``auth`` stays as written, since ``convert`` exists to migrate a gost config as is.
    """
    masked = 0
    for entry in data.get("tunnels", []):
        for role in ("bind", "connect"):
            cred = entry.get(role)
            if isinstance(cred, dict) and cred.get("password"):
                cred["password"] = MASK
                masked += 1
    return masked


def to_builtins(config: Config) -> dict[str, Any]:
    """Plain data without default values (the shape TOML and YAML files are written in)."""
    data: dict[str, Any] = msgspec.to_builtins(config)
    if not data.get("burrow"):
        data.pop("burrow", None)  # all-default settings: no [burrow] table
    return data


def to_toml(config: Config, *, header: str = HEADER) -> str:
    """Burrow TOML that loads back into an equal Config, except masked tunnel passwords."""
    data = to_builtins(config)
    if mask_tunnel_secrets(data):
        header += f"# [[tunnels]] passwords are shown as {MASK}: copy them from the source\n"
    return header + tomli_w.dumps(data)
