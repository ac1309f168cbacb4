"""Burrow TOML configuration files into a Config.

Same keys as gost YAML (schema.py), but strict: an unknown key is an error naming the key, the
line (best effort: tomllib reports no positions for valid documents, so a light scan of table
headers and ``key =`` lines maps key paths to lines) and the keys that are allowed there.
"""

from __future__ import annotations

import re
import tomllib

from .errors import ConfigError
from .notices import ConfigWarning
from .schema import Config
from .schema_decode import decode

MAX_TOML_BYTES = 4 * 1024 * 1024

_PART = re.compile(r'\s*(?:"((?:[^"\\]|\\.)*)"|\'([^\']*)\'|([A-Za-z0-9_-]+))\s*')


def load_toml(text: str, *, file: str | None = None) -> Config:
    """Decode Burrow TOML text; every problem is a ConfigError."""
    return load_toml_with_lines(text, file=file)[0]


def load_toml_with_lines(
    text: str, *, file: str | None = None, warnings: list[ConfigWarning] | None = None
) -> tuple[Config, dict[str, int]]:
    """Decode Burrow TOML text and return the line of every key path it could locate."""
    if len(text) > MAX_TOML_BYTES:
        raise ConfigError(
            "the file is too large", fix=f"keep it under {MAX_TOML_BYTES} bytes", file=file
        )
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        m = re.search(r"\(at line (\d+), column \d+\)", message)
        problem = re.sub(r"\s*\(at line \d+, column \d+\)", "", message) or "syntax error"
        raise ConfigError(
            f"not valid TOML: {problem}",
            fix="correct the TOML syntax at this line",
            file=file,
            line=int(m.group(1)) if m else None,
        ) from None
    except RecursionError:
        raise ConfigError("TOML nested too deeply", fix="simplify the file", file=file) from None
    lines = key_lines(text)
    return decode(data, strict=True, file=file, lines=lines, warnings=warnings), lines


def _split_key(text: str) -> list[str] | None:
    parts: list[str] = []
    pos = 0
    while True:
        m = _PART.match(text, pos)
        if m is None:
            return None
        parts.append(next(g for g in m.groups() if g is not None))
        pos = m.end()
        if pos == len(text):
            return parts
        if text[pos] != ".":
            return None
        pos += 1


def key_lines(text: str) -> dict[str, int]:
    """Map lower-cased key paths (``services[0].handler.type``) to 1-based lines; best effort."""
    lines: dict[str, int] = {}
    arrays: dict[str, int] = {}
    table = ""

    def resolve(parts: list[str], array_last: bool) -> str:
        path = ""
        for i, part in enumerate(parts):
            path = f"{path}.{part}" if path else part
            key = path.lower()
            if i == len(parts) - 1 and array_last:
                arrays[key] = arrays.get(key, 0) + 1
            if key in arrays:
                path = f"{path}[{arrays[key] - 1}]"
        return path

    for number, raw in enumerate(text.splitlines(), 1):
        s = raw.strip()
        if not s or s.startswith("#"):
            continue
        header = re.match(r"^(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$", s)
        if header:
            parts = _split_key(header.group(2))
            if parts is None:
                continue
            table = resolve(parts, header.group(1) == "[[")
            lines.setdefault(table.lower(), number)
            continue
        m = re.match(r'^((?:"(?:[^"\\]|\\.)*"|\'[^\']*\'|[A-Za-z0-9_.\s-])+?)\s*=', s)
        if m:
            parts = _split_key(m.group(1))
            if parts is not None:
                path = ".".join([table, *parts]) if table else ".".join(parts)
                lines.setdefault(path.lower(), number)
    return lines
