"""The front doors in one place: -C FILE by extension, -L/-F URLs, or both merged as gost does."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from typing import NamedTuple

import msgspec

from .errors import ConfigError
from .notices import ConfigWarning
from .schema import Config, line_for
from .toml_load import load_toml_with_lines

MAX_CONFIG_BYTES = 4 * 1024 * 1024
LineLookup = Callable[[str | None], int | None]


class Loaded(NamedTuple):
    """A loaded config, the accepted-but-unused keys found on the way, and the line lookup."""

    config: Config
    warnings: list[ConfigWarning]
    lookup: LineLookup


def load_file(path: str | os.PathLike[str]) -> Config:
    """Load ``.toml`` (Burrow) or ``.yaml``/``.yml``/``.json`` (gost); ConfigError otherwise."""
    return load_file_with_lines(path)[0]


def load_file_with_lines(
    path: str | os.PathLike[str], *, warnings: list[ConfigWarning] | None = None
) -> tuple[Config, LineLookup]:
    """Like load_file, plus a lookup from key path to line for errors found later (plans).

    Warnings go to ``warnings``, or to the log when it is None.
    """
    name = os.fspath(path)
    ext = os.path.splitext(name)[1].lower()
    if ext not in (".toml", ".yaml", ".yml", ".json"):
        raise ConfigError(
            f"unknown config file type {ext or '(none)'!r}",
            file=name,
            fix="name it .toml (Burrow) or .yaml, .yml, .json (gost)",
        )
    try:
        if os.stat(name).st_size > MAX_CONFIG_BYTES:
            raise ConfigError(
                "the file is too large", fix=f"keep it under {MAX_CONFIG_BYTES} bytes", file=name
            )
        with open(name, "rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(
            f"cannot read the file: {exc.strerror or exc}",
            file=name,
            fix="check the path and its permissions",
        ) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"not UTF-8 text (byte {exc.start})", fix="save the file as UTF-8", file=name
        ) from None
    lines: dict[str, int] = {}
    if ext == ".toml":
        config, lines = load_toml_with_lines(text, file=name, warnings=warnings)
    else:
        # Imported here: PyYAML and json stay out of processes that never read a gost file.
        from .gost_yaml import load_json, load_yaml_with_lines

        if ext == ".json":
            config = load_json(text, file=name, warnings=warnings)
        else:
            config, lines = load_yaml_with_lines(text, file=name, warnings=warnings)
    return config, lambda key: line_for(lines, key)


def load_cli(
    services: Sequence[str], nodes: Sequence[str], *, warnings: list[ConfigWarning] | None = None
) -> Config:
    """Config from gost's -L (services) and -F (nodes) URLs."""
    from .gost_cli import load_cli as _load_cli  # only when -L/-F were given

    return _load_cli(services, nodes, warnings=warnings)


def load(
    config_file: str | os.PathLike[str] | None = None,
    services: Sequence[str] = (),
    nodes: Sequence[str] = (),
) -> Config:
    """-C FILE and/or -L/-F: command-line services are appended to the file's, as gost does."""
    return load_with_lines(config_file, services, nodes)[0]


def load_checked(
    config_file: str | os.PathLike[str] | None = None,
    services: Sequence[str] = (),
    nodes: Sequence[str] = (),
) -> Loaded:
    """Like load, plus the warnings (as data, not logged) and the line lookup."""
    warnings: list[ConfigWarning] = []
    config, lookup = load_with_lines(config_file, services, nodes, warnings=warnings)
    return Loaded(config, warnings, lookup)


def load_with_lines(
    config_file: str | os.PathLike[str] | None = None,
    services: Sequence[str] = (),
    nodes: Sequence[str] = (),
    *,
    warnings: list[ConfigWarning] | None = None,
) -> tuple[Config, LineLookup]:
    """Like load, plus the line lookup of the file (command-line keys have no lines)."""
    if nodes and not services:
        raise ConfigError(
            "-F given without any -L", fix="add a -L service that uses the chain", key="-F[0]"
        )
    if config_file is None:
        if not services:
            raise ConfigError("nothing to run", fix="give -C FILE or at least one -L URL", key="-L")
        return load_cli(services, nodes, warnings=warnings), lambda key: None
    config, lookup = load_file_with_lines(config_file, warnings=warnings)
    if not services and not nodes:
        return config, lookup
    from .gost_cli import load_cli as _load_cli  # only when -L/-F were given

    # Generated names (service-0, chain-0) skip the file's so references stay unambiguous.
    taken = {s.name for s in config.services} | {c.name for c in config.chains}
    extra = _load_cli(services, nodes, taken=taken, warnings=warnings)
    merged = msgspec.structs.replace(
        config, services=config.services + extra.services, chains=config.chains + extra.chains
    )
    sizes = {"services": len(config.services), "chains": len(config.chains)}

    def merged_lookup(key: str | None) -> int | None:
        m = re.match(r"(services|chains)\[(\d+)\]", key or "")
        return None if m and int(m.group(2)) >= sizes[m.group(1)] else lookup(key)

    return merged, merged_lookup
