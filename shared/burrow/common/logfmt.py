"""Structured log lines: one event name plus key=value fields, as text or as JSON.

Text::

    2026-11-24T17:00:00.123Z INFO  worker-0 tunnel.up tunnel=4d21... connector=... peer="a b"

JSON: one object per line, ``{"ts", "level", "process", "event", ...fields}``.

Call sites use :func:`event`; :func:`setup_logging` (called once per process) attaches one stderr
handler to the ``burrow`` logger. Policy: INFO is for state changes only (service up, tunnel
up/down, worker started/exited); anything per connection is DEBUG.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any

ROOT = "burrow"
_FIELDS = "burrow_fields"
_RESERVED = frozenset({"ts", "level", "process", "event"})
# Characters that would make a text value ambiguous to split on spaces or '='.
_QUOTE_CHARS = frozenset(' "=\\\n\r\t')
# The same set as one C-level scan: a generator over every character was half of a log line's
# cost (BENCHMARKS.md, Scale: the tunnel.up line of every BIND).
_NEEDS_QUOTE = re.compile("[" + re.escape("".join(sorted(_QUOTE_CHARS))) + "]")
# One log line never carries a megabyte of someone's payload.
MAX_VALUE_CHARS = 2048


def _timestamp(created: float) -> str:
    seconds = int(created)
    millis = int((created - seconds) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def _clip(text: str) -> str:
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS] + "..."


def _text_value(value: Any) -> str:
    text = _clip(value if isinstance(value, str) else str(value))
    if text == "" or _NEEDS_QUOTE.search(text) is not None:
        return json.dumps(text, ensure_ascii=False)
    return text


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = getattr(record, _FIELDS, None)
    return fields if isinstance(fields, dict) else {}


class TextFormatter(logging.Formatter):
    """``<ts> <LEVEL> <process> <event> k=v ...``"""

    def __init__(self, process: str) -> None:
        super().__init__()
        self.process = process

    def format(self, record: logging.LogRecord) -> str:
        """Render one record as a text line (traceback, if any, on the following lines)."""
        parts = [
            _timestamp(record.created),
            f"{record.levelname:<5}",
            self.process,
            _clip(record.getMessage()),
        ]
        parts.extend(f"{key}={_text_value(value)}" for key, value in _fields(record).items())
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def __init__(self, process: str) -> None:
        super().__init__()
        self.process = process

    def format(self, record: logging.LogRecord) -> str:
        """Render one record as a single-line JSON object."""
        obj: dict[str, Any] = {
            "ts": _timestamp(record.created),
            "level": record.levelname.lower(),
            "process": self.process,
            "event": _clip(record.getMessage()),
        }
        for key, value in _fields(record).items():
            if isinstance(value, str):
                value = _clip(value)
            obj[key + "_" if key in _RESERVED else key] = value
        if record.exc_info:
            obj["exc"] = self.formatException(record.exc_info)
        return json.dumps(obj, ensure_ascii=False, default=str)


class _BurrowHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks the handler setup_logging owns, so a second call replaces it instead of doubling."""


def setup_logging(level: str = "info", fmt: str = "text", *, process: str = "main") -> None:
    """Send the ``burrow`` logger to stderr in ``fmt`` ("text" | "json") at ``level``."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(  # noqa: TRY004 - a bad setting, callers report ValueError
            f"unknown log level {level!r}: use debug, info, warning or error"
        )
    if fmt == "text":
        formatter: logging.Formatter = TextFormatter(process)
    elif fmt == "json":
        formatter = JsonFormatter(process)
    else:
        raise ValueError(f"unknown log format {fmt!r}: use text or json")
    logger = logging.getLogger(ROOT)
    for old in [h for h in logger.handlers if isinstance(h, _BurrowHandler)]:
        logger.removeHandler(old)
    handler = _BurrowHandler(sys.stderr)
    handler.setFormatter(formatter)
    logger.addHandler(handler)
    logger.setLevel(numeric)
    logger.propagate = False


def event(logger: logging.Logger, level: int, name: str, /, **fields: Any) -> None:
    """Log event ``name`` with structured ``fields`` (cheap no-op when the level is off)."""
    if logger.isEnabledFor(level):
        # makeRecord + handle is logger.log without findCaller (a walk up the stack, ~10 % of a
        # line): no formatter or handler here uses the caller's file, line or function.
        logger.handle(
            logger.makeRecord(logger.name, level, "", 0, name, (), None, extra={_FIELDS: fields})
        )


SHORT_ID_CHARS = 8


def tunnel_ref(tunnel_id: str, logger: logging.Logger) -> str:
    """A tunnel ID for a log line: in full at debug level, else its first 8 hex characters.

    With auth off a tunnel ID is the only secret a client needs, so logs kept at info level
    must not hand it to whoever reads them.
    """
    if logger.isEnabledFor(logging.DEBUG):
        return tunnel_id
    return tunnel_id[:SHORT_ID_CHARS]
