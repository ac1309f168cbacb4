"""Structured log lines (burrow.common.logfmt): text and JSON shapes, levels, handler reuse."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from burrow.common.logfmt import _text_value, event, setup_logging

TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (\S+)\s+(\S+) (.*)$")


@pytest.fixture
def burrow_logger() -> Iterator[logging.Logger]:
    root = logging.getLogger("burrow")
    saved = (list(root.handlers), root.level, root.propagate)
    yield logging.getLogger("burrow.test")
    root.handlers[:], root.level, root.propagate = saved


def test_text_line_has_timestamp_level_process_event_and_fields(
    burrow_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_logging("info", "text", process="worker-0")
    event(burrow_logger, logging.INFO, "tunnel.up", tunnel="4d21", peer="a b", empty="", n=3)
    line = capsys.readouterr().err.strip()
    m = TEXT_LINE.match(line)
    assert m, line
    assert m.group(1) == "INFO" and m.group(2) == "worker-0"
    assert m.group(3) == 'tunnel.up tunnel=4d21 peer="a b" empty="" n=3'
    assert line[23:30] == "Z INFO "  # level padded to five columns


def test_debug_is_quiet_at_info_and_shown_at_debug(
    burrow_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_logging("info", "text")
    event(burrow_logger, logging.DEBUG, "conn.open", peer="x")
    assert capsys.readouterr().err == ""
    setup_logging("debug", "text")
    event(burrow_logger, logging.DEBUG, "conn.open", peer="x")
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "DEBUG main conn.open peer=x" in err


def test_json_lines_are_one_object_each(
    burrow_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_logging("info", "json", process="main")
    event(burrow_logger, logging.WARNING, "worker.exited", worker=1, code=-9, level="shadowed")
    burrow_logger.info("plain message %s", "arg")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["event"] == "worker.exited" and first["level"] == "warning"
    assert first["worker"] == 1 and first["code"] == -9 and first["level_"] == "shadowed"
    assert first["process"] == "main" and first["ts"].endswith("Z")
    assert second["event"] == "plain message arg"


def test_exception_text_is_kept(
    burrow_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_logging("info", "json")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        burrow_logger.exception("handoff.callback_failed")
    obj = json.loads(capsys.readouterr().err)
    assert "RuntimeError: boom" in obj["exc"]


def test_setup_twice_does_not_duplicate_lines(
    burrow_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_logging("info", "text")
    setup_logging("info", "text")
    event(burrow_logger, logging.INFO, "service.up")
    assert capsys.readouterr().err.count("service.up") == 1


def test_bad_level_or_format_is_refused() -> None:
    with pytest.raises(ValueError, match="level"):
        setup_logging("loud")
    with pytest.raises(ValueError, match="format"):
        setup_logging("info", "xml")


@given(st.text(alphabet=st.sampled_from('ab1-:.[]/é "=\\\n\r\t'), max_size=12))
def test_text_value_quotes_exactly_what_would_split_or_be_ambiguous(text: str) -> None:
    # The regex scan must decide as the character set it replaced, and quoting must round-trip.
    out = _text_value(text)
    ambiguous = text == "" or any(ch in ' "=\\\n\r\t' for ch in text)
    assert (out != text) == ambiguous
    assert (json.loads(out) if ambiguous else out) == text


def test_event_records_fields_and_filters_like_logger_log(
    burrow_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_logging("info", "json", process="worker-1")
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    root = logging.getLogger("burrow")
    keep = Keep(level=logging.WARNING)
    root.addHandler(keep)

    def drop(r: logging.LogRecord) -> bool:
        return r.getMessage() != "dropped.by_filter"

    burrow_logger.addFilter(drop)
    try:
        event(burrow_logger, logging.WARNING, "disk.full", path="/var", free=0)
        event(burrow_logger, logging.INFO, "info.only")  # below the Keep handler's level
        event(burrow_logger, logging.WARNING, "dropped.by_filter")
        event(burrow_logger, logging.DEBUG, "not.enabled")
    finally:
        burrow_logger.removeFilter(drop)
    lines = [json.loads(x) for x in capsys.readouterr().err.splitlines()]
    assert [x["event"] for x in lines] == ["disk.full", "info.only"]
    assert lines[0]["path"] == "/var" and lines[0]["free"] == 0
    assert [r.getMessage() for r in seen] == ["disk.full"]
    assert seen[0].name == "burrow.test" and seen[0].levelno == logging.WARNING
