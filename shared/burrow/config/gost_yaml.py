"""gost YAML/JSON configuration files (docs/configuration.md, Front doors) into a Config.

gost reads its files with Go's yaml.v3 (JSON through encoding/json), so this loader follows
that reading rather than PyYAML's YAML 1.1 defaults where they disagree in ways a config could
hit: only true/false spellings are booleans, ``1:30`` is a string rather than sexagesimal 90,
and unquoted dates stay strings. A key given twice in one mapping is an error with both lines,
as in gost (seed 13 repeats ``services:``). Unknown structural keys are dropped with a warning,
unknown metadata is kept with a warning (schema_decode.decode, notices.py).
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from .errors import ConfigError
from .notices import ConfigWarning
from .schema import Config
from .schema_decode import decode

MAX_YAML_BYTES = 4 * 1024 * 1024
MAX_YAML_NODES = 200_000  # YAML nodes visited, aliases counted per use

_DROP = {
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:timestamp",
}


class _GostLoader(yaml.SafeLoader):
    """SafeLoader with yaml.v3-like scalar resolution for untyped values."""


_GostLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in _DROP]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_GostLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_GostLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$"),
    list("-+0123456789"),
)
_GostLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?|\.[0-9_]+(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


def load_yaml(text: str, *, file: str | None = None) -> Config:
    """Decode gost YAML text; every problem is a ConfigError."""
    return load_yaml_with_lines(text, file=file)[0]


def load_yaml_with_lines(
    text: str, *, file: str | None = None, warnings: list[ConfigWarning] | None = None
) -> tuple[Config, dict[str, int]]:
    """Decode gost YAML text and return the line of every key path (lower-cased paths)."""
    if len(text) > MAX_YAML_BYTES:
        raise ConfigError(
            "the file is too large", fix=f"keep it under {MAX_YAML_BYTES} bytes", file=file
        )
    lines: dict[str, int] = {}
    loader: _GostLoader | None = None
    try:
        loader = _GostLoader(text)
        node = loader.get_single_node()
        data: Any = None
        if node is not None:
            _Lines(lines, file).visit(node, "")
            data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise ConfigError(
            f"not valid YAML: {problem}",
            fix="correct the YAML syntax at this line",
            file=file,
            line=line,
        ) from None
    except (yaml.YAMLError, ValueError, TypeError, RecursionError) as exc:
        raise ConfigError(
            f"not valid YAML: {exc}", fix="correct the YAML syntax", file=file
        ) from None
    finally:
        if loader is not None:
            loader.dispose()
    return decode(data, strict=False, file=file, lines=lines, warnings=warnings), lines


def load_json(
    text: str, *, file: str | None = None, warnings: list[ConfigWarning] | None = None
) -> Config:
    """Decode a gost JSON config (same schema as YAML; no line numbers)."""
    if len(text) > MAX_YAML_BYTES:
        raise ConfigError(
            "the file is too large", fix=f"keep it under {MAX_YAML_BYTES} bytes", file=file
        )

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                raise ConfigError(
                    f"key {key!r} is given twice in one object",
                    fix="merge the two into one",
                    key=key,
                    file=file,
                )
            out[key] = value
        return out

    try:
        data = json.loads(text, object_pairs_hook=pairs)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"not valid JSON: {exc.msg}", fix="correct the JSON syntax", file=file, line=exc.lineno
        ) from None
    except RecursionError:
        raise ConfigError("JSON nested too deeply", fix="simplify the file", file=file) from None
    return decode(data, strict=False, file=file, warnings=warnings)


class _Lines:
    """Walks the composed node tree: records key lines, refuses duplicate keys."""

    def __init__(self, lines: dict[str, int], file: str | None) -> None:
        self.lines = lines
        self.file = file
        self.count = 0

    def visit(self, node: yaml.Node, path: str) -> None:
        self.count += 1
        if self.count > MAX_YAML_NODES:
            raise ConfigError(
                "the document is too large (YAML aliases count once per use)",
                fix="avoid anchors and aliases or split the file",
                file=self.file,
            )
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, int] = {}
            for key_node, value_node in node.value:
                if (
                    not isinstance(key_node, yaml.ScalarNode)
                    or key_node.tag == "tag:yaml.org,2002:merge"
                ):
                    self.visit(value_node, path)
                    continue
                key = str(key_node.value)
                line = key_node.start_mark.line + 1
                kpath = f"{path}.{key}" if path else key
                if key in seen:
                    raise ConfigError(
                        f"key {key!r} is given twice in one mapping (first on line {seen[key]}); "
                        "gost refuses this too",
                        fix=f"merge the two {key}: blocks into one",
                        key=kpath,
                        file=self.file,
                        line=line,
                    )
                seen[key] = line
                self.lines.setdefault(kpath.lower(), line)
                self.visit(value_node, kpath)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                ipath = f"{path}[{i}]"
                self.lines.setdefault(ipath.lower(), item.start_mark.line + 1)
                self.visit(item, ipath)
