"""``decode``: plain parsed data (TOML, YAML, JSON, the -L/-F translator) into a ``Config``.

* metadata keys are lower-cased (gost metadata is case-insensitive) and values restricted to
  what TOML and msgpack can carry;
* Go duration strings in structural fields (``failTimeout``, ``reload``) become float seconds;
* HEAD's ``filter: {host, protocol, path}`` on forwarder nodes is folded into the rc-era fields;
* strict mode (Burrow TOML) refuses unknown keys; lenient mode (gost YAML) matches structural
  keys case-insensitively, as gost's viper loader does, and drops unknown ones with a warning;
* in both modes, metadata Burrow does not read is kept (gost may know it) and reported, as are
  accepted keys Burrow does not act on yet (notices.py); warnings go to the caller's list.

The structs are in schema.py.
"""

from __future__ import annotations

import datetime
import functools
import re
from collections.abc import Collection, Mapping
from typing import Any

import msgspec
import msgspec.inspect as mi

from .errors import ConfigError
from .metadata import parse_duration
from .notices import (
    GOST_FEATURE,
    GOST_FIELDS,
    GOST_SECTIONS,
    NOT_YET_USED,
    ConfigWarning,
    Kind,
    emit,
    metadata_warning,
    unknown_key,
)
from .schema import Config, ForwardNode, line_for

# gost (logrus) level names -> Burrow's.
GOST_LEVELS = {"trace": "debug", "warn": "warning", "fatal": "critical", "panic": "critical"}
MAX_NODES = 200_000  # parsed values walked per config; bounds YAML alias fan-out
MAX_DEPTH = 64
_INT64 = 2**63


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


@functools.cache
def _config_type() -> mi.StructType:
    info = mi.type_info(Config)
    assert isinstance(info, mi.StructType)
    return info


def decode(
    data: object,
    *,
    strict: bool,
    file: str | None = None,
    lines: Mapping[str, int] | None = None,
    warnings: list[ConfigWarning] | None = None,
    check_metadata: bool = True,
) -> Config:
    """Validate parsed data into a Config; every problem is a ConfigError.

    Accepted keys that do nothing are appended to ``warnings`` (logged when it is None);
    ``check_metadata=False`` leaves metadata to the caller (the -L/-F translator reports it per
    URL rather than once per copy).
    """
    decoder = _Decoder(strict, file, lines or {}, warnings, check_metadata)
    config = decoder.decode(data)
    decoder.not_yet_used(config)
    return config


class _Decoder:
    def __init__(
        self,
        strict: bool,
        file: str | None,
        lines: Mapping[str, int],
        warnings: list[ConfigWarning] | None,
        check_metadata: bool,
    ) -> None:
        self.strict = strict
        self.file = file
        self.lines = lines
        self.warnings = warnings
        self.check_metadata = check_metadata
        self.count = 0

    def warn(self, key: str, kind: Kind, problem: str, fix: str) -> None:
        line = line_for(self.lines, key)
        emit(self.warnings, ConfigWarning(kind, problem, fix, key=key, file=self.file, line=line))

    def not_yet_used(self, config: Config) -> None:
        """Warn about the NOT_YET_USED keys that are set."""
        given: list[tuple[str, str]] = []
        for key, entry in given:
            self.warn(key, "not-yet", NOT_YET_USED[entry], "remove it for now")

    def error(self, key: str | None, problem: str, fix: str) -> ConfigError:
        return ConfigError(
            problem, fix=fix, key=key or None, file=self.file, line=line_for(self.lines, key)
        )

    def decode(self, data: object) -> Config:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise self.error(
                None, "the top level is not a mapping", "start the file with services:"
            )
        data = self.gost_log(self.gost_metrics(data))
        normal = self.walk(data, _config_type(), "", 0)
        try:
            return msgspec.convert(normal, Config)
        except msgspec.ValidationError as exc:
            raise self.translate(str(exc)) from None

    def gost_metrics(self, data: dict[Any, Any]) -> dict[Any, Any]:
        """gost's ``metrics: {addr, path}`` section is the admin endpoint (docs/admin.md)."""
        section = data.get("metrics")
        if not isinstance(section, dict):
            return data
        data = {k: v for k, v in data.items() if k != "metrics"}
        burrow = dict(data.get("burrow") or {})
        if "addr" in section and "admin" not in burrow:
            burrow["admin"] = section["addr"]
        if "path" in section and "admin_metrics_path" not in burrow:
            burrow["admin_metrics_path"] = section["path"]
        for key in section:
            if key not in ("addr", "path"):
                self.warn(f"metrics.{key}", "gost", GOST_FEATURE,
                          "use [burrow] admin_token for access control")  # fmt: skip
        data["burrow"] = burrow
        return data

    def gost_log(self, data: dict[Any, Any]) -> dict[Any, Any]:
        """gost's ``log: {level, format, output}`` sets [burrow] log_level/format/output."""
        section = data.get("log")
        if not isinstance(section, dict):
            return data
        data = {k: v for k, v in data.items() if k != "log"}
        burrow = dict(data.get("burrow") or {})
        level = section.get("level")
        if isinstance(level, str) and "log_level" not in burrow:
            burrow["log_level"] = GOST_LEVELS.get(level.lower(), level.lower())
        for key in ("format", "output"):
            if key in section and f"log_{key}" not in burrow:
                burrow[f"log_{key}"] = section[key]
        for key in section:
            if key not in ("level", "format", "output"):
                self.warn(f"log.{key}", "gost", GOST_FEATURE, "remove it (log rotation: logrotate)")
        data["burrow"] = burrow
        return data

    def walk(self, value: Any, t: Any, path: str, depth: int, parent: Collection[str] = ()) -> Any:
        self.count += 1
        if self.count > MAX_NODES or depth > MAX_DEPTH:
            raise self.error(
                path,
                "the configuration is too large or too deeply nested",
                "split it up; YAML aliases count once per use",
            )
        if isinstance(t, mi.UnionType):
            if value is None:
                return None
            shapes = [s for s in t.types if not isinstance(s, mi.NoneType)]
            t = shapes[0] if len(shapes) == 1 else t
        if isinstance(t, mi.Metadata):
            extra = t.extra or {}
            if extra.get("duration"):
                return self.duration(value, path)
            if extra.get("metadata"):
                return self.metadata(value, path)
            t = t.type
        if isinstance(t, mi.StructType) and isinstance(value, dict):
            return self.struct(value, t, path, depth, parent)
        if isinstance(t, mi.ListType) and isinstance(value, list):
            return [
                self.walk(v, t.item_type, f"{path}[{i}]", depth + 1) for i, v in enumerate(value)
            ]
        if isinstance(value, int) and not isinstance(value, bool) and not -_INT64 <= value < _INT64:
            raise self.error(path, "integer out of range", "use a value that fits in 64 bits")
        if not self.strict and isinstance(t, mi.StrType) and isinstance(value, (int, float)):
            # gost decodes YAML through mapstructure's weak typing: `password: 1234` is "1234".
            return str(value).lower() if isinstance(value, bool) else str(value)
        return value

    def unknown(
        self,
        key: str,
        kpath: str,
        st: mi.StructType,
        fields: Mapping[str, Any],
        parent: Collection[str],
    ) -> None:
        """A key the struct has no field for: an error (TOML) or a warning (gost files)."""
        gost = GOST_SECTIONS if st.cls is Config else GOST_FIELDS.get(st.cls.__name__, ())
        kind, problem, fix = unknown_key(key, known=fields, gost=gost)
        if kind == "unknown" and key.lower() in {p.lower() for p in parent}:
            problem = f"{key!r} is not a key here; it belongs one level up"
            fix = f"indent {key}: like the keys of the enclosing block"
        if self.strict:
            raise self.error(kpath, problem, f"{fix}; keys here: {', '.join(fields)}")
        self.warn(kpath, kind, problem, fix)

    def struct(
        self,
        value: dict[Any, Any],
        st: mi.StructType,
        path: str,
        depth: int,
        parent: Collection[str] = (),
    ) -> dict[str, Any]:
        fields = {f.name: f for f in st.fields}
        lookup = {n: n for n in fields} if self.strict else {n.lower(): n for n in fields}
        out: dict[str, Any] = {}
        for key, sub in value.items():
            kpath = _join(path, key)
            name = None
            if isinstance(key, str):
                name = lookup.get(key if self.strict else key.lower())
            if name is None:
                self.unknown(str(key), kpath, st, fields, parent)
                continue
            if name in out:
                raise self.error(
                    kpath, f"{name!r} is given twice (keys differ only in case)", "keep one"
                )
            out[name] = self.walk(
                sub, fields[name].type, _join(path, name), depth + 1, tuple(fields)
            )
        if st.cls is ForwardNode:
            flt = out.pop("filter", None)
            if isinstance(flt, dict):
                # HEAD converts the old top-level fields into a filter; the filter wins.
                for k in ("host", "protocol", "path"):
                    if flt.get(k) is not None:
                        out[k] = flt[k]
        return out

    def duration(self, value: Any, path: str) -> float:
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise self.error(
                path, str(exc), 'use a duration such as "10s", "1m30s" or 30'
            ) from None

    def metadata(self, value: Any, path: str) -> Any:
        if value is None:
            return {}
        if not isinstance(value, dict):
            return value  # msgspec reports the type error with its path
        out: dict[str, Any] = {}
        for key, sub in value.items():
            k = str(key).lower()
            kpath = _join(path, k)
            if k in out:
                raise self.error(
                    kpath,
                    f"metadata key {k!r} is given twice (keys are case-insensitive)",
                    "keep one spelling",
                )
            if sub is None:
                continue  # gost reads an empty value as absent
            unused = metadata_warning(str(key)) if self.check_metadata else None
            if unused is not None:
                self.warn(kpath, *unused)
            out[k] = self.value(sub, kpath, 0)
        return out

    def value(self, v: Any, path: str, depth: int) -> Any:
        self.count += 1
        if self.count > MAX_NODES or depth > MAX_DEPTH:
            raise self.error(path, "metadata too large or too deeply nested", "simplify it")
        if isinstance(v, (bool, str, float)):
            return v
        if isinstance(v, int):
            if not -_INT64 <= v < _INT64:
                raise self.error(path, "integer out of range", "use a value that fits in 64 bits")
            return v
        if isinstance(v, (datetime.date, datetime.time)):
            return v.isoformat()  # gost reads unquoted dates as strings
        if isinstance(v, list):
            if any(x is None for x in v):
                raise self.error(path, "a list contains an empty (null) value", "remove it")
            return [self.value(x, f"{path}[{i}]", depth + 1) for i, x in enumerate(v)]
        if isinstance(v, dict):
            return {
                str(k): self.value(x, _join(path, k), depth + 1)
                for k, x in v.items()
                if x is not None
            }
        raise self.error(
            path, f"unsupported value type {type(v).__name__}", "use a string, number or boolean"
        )

    def translate(self, message: str) -> ConfigError:
        m = re.fullmatch(r"(.*?)(?: - at `\$(.*)`)?", message, re.DOTALL)
        assert m is not None
        text, where = m.group(1), (m.group(2) or "").lstrip(".")
        missing = re.fullmatch(r"Object missing required field `(\w+)`", text)
        if missing:
            key = _join(where, missing.group(1))
            return self.error(
                key, f"required key {missing.group(1)!r} is missing", f"add {missing.group(1)}"
            )
        problem = text[:1].lower() + text[1:]
        problem = problem.replace("`", "")
        return self.error(where, problem, _fix_for(where))


def _type_at(path: str) -> Any:
    t: Any = _config_type()
    for name, index in re.findall(r"\.?([^.\[\]]+)|\[(\d+)\]", path):
        while True:
            if isinstance(t, mi.Metadata):
                t = t.type
            elif isinstance(t, mi.UnionType):
                shapes = [s for s in t.types if not isinstance(s, mi.NoneType)]
                t = shapes[0]
            else:
                break
        if index and isinstance(t, mi.ListType):
            t = t.item_type
        elif name and isinstance(t, mi.StructType):
            t = next((f.type for f in t.fields if f.name == name), None)
        else:
            return None
    return t


def _fix_for(path: str) -> str:
    t = _type_at(path)
    if isinstance(t, mi.Metadata):
        t = t.type
    if isinstance(t, mi.UnionType):
        t = next((s for s in t.types if not isinstance(s, mi.NoneType)), t)
    if isinstance(t, mi.Metadata):
        t = t.type
    if isinstance(t, mi.LiteralType):
        return "use one of: " + ", ".join(str(v) for v in t.values)
    hints = {
        mi.IntType: "use a whole number",
        mi.FloatType: "use a number",
        mi.StrType: "use a (quoted) string",
        mi.BoolType: "use true or false",
        mi.ListType: "use a list",
        mi.StructType: "use a table/mapping of keys",
        mi.DictType: "use a table/mapping of key = value pairs",
    }
    for cls, hint in hints.items():
        if isinstance(t, cls):
            bound = getattr(t, "ge", None)
            if bound is not None:
                return f"{hint} >= {bound}" + (
                    f" and <= {t.le}" if getattr(t, "le", None) is not None else ""
                )
            return hint
    return "check the value against the documentation"
