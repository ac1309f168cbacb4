"""gost metadata: case-insensitive keys, value coercion, Go durations."""

from __future__ import annotations

import pytest

from burrow.config.errors import ConfigError
from burrow.config.gost_yaml import load_yaml, load_yaml_with_lines
from burrow.config.metadata import (
    get_bool,
    get_duration,
    get_float,
    get_int,
    get_str,
    parse_duration,
)
from burrow.config.notices import ConfigWarning


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("1h2m3.5s", 3723.5),
        ("300ms", 0.3),
        ("10s", 10.0),
        ("1.5h", 5400.0),
        ("2us", 2e-6),
        ("2µs", 2e-6),
        ("7ns", 7e-9),
        ("0", 0.0),
        ("30", 30.0),  # gost falls back to integer seconds
        (15, 15.0),
        (2.5, 2.5),
        (" 1m ", 60.0),
    ],
)
def test_durations(value: object, seconds: float) -> None:
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "value", ["", "s", "1x", "1h-2m", "-5s", "-3", "1.2.3s", "ten", True, None, [1]]
)
def test_bad_durations(value: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)


def test_getters_first_present_key_wins() -> None:
    md = {
        "tunnel.id": "b",
        "tunnelid": "a",
        "n": "42",
        "f": "1.5",
        "d": "2m",
        "flag": "T",
        "zero": 0,
    }
    assert get_str(md, "tunnelID", "tunnel.id") == "a"
    assert get_str(md, "missing", "tunnel.id") == "b"
    assert get_str(md, "missing") is None and get_str(md, "missing", default="x") == "x"
    assert get_int(md, "n") == 42 and get_int(md, "missing", default=7) == 7
    assert get_float(md, "f") == 1.5 and get_float(md, "n") == 42.0
    assert get_duration(md, "d") == 120.0 and get_duration(md, "missing") is None
    assert get_bool(md, "flag") is True and get_bool(md, "zero") is False
    assert get_bool(md, "missing", default=True) is True
    assert get_str({"p": 8080}, "p") == "8080"


@pytest.mark.parametrize(
    ("getter", "value", "fix"),
    [
        (get_bool, "maybe", "use true or false"),
        (get_int, "4.5", "use a whole number such as 8"),
        (get_int, True, "use a whole number such as 8"),
        (get_float, "x", "use a number such as 1.5"),
        (get_duration, "soon", 'use a duration such as "10s", "300ms" or 15'),
        (get_str, [1], "quote the value"),
    ],
)
def test_bad_values_name_the_key(getter: object, value: object, fix: str) -> None:
    with pytest.raises(ConfigError) as info:
        where = "services[0].handler.metadata"
        getter({"readtimeout": value}, "readTimeout", where=where)  # type: ignore[operator]
    assert info.value.key == "services[0].handler.metadata.readtimeout"
    assert info.value.fix == fix


def test_yaml_metadata_keys_are_lower_cased_and_unknown_kept() -> None:
    text = (
        "services:\n- name: a\n  addr: :1\n  handler:\n    type: relay\n"
        "    metadata:\n      EntryPoint: ':80'\n      Tunnel.Direct: true\n"
        "      someGostOption: 3\n"
    )
    warnings: list[ConfigWarning] = []
    config = load_yaml_with_lines(text, warnings=warnings)[0]
    assert config.services[0].handler.metadata == {
        "entrypoint": ":80",
        "tunnel.direct": True,
        "somegostoption": 3,
    }
    (warning,) = warnings
    assert str(warning) == (
        "line 9: services[0].handler.metadata.somegostoption: unknown metadata key "
        "'someGostOption' (fix: remove it or check the spelling)"
    )


def test_yaml_scalars_read_like_gost() -> None:
    # yaml.v3 (gost) keeps yes/on, 1:30 and dates as strings; PyYAML's YAML 1.1 would not.
    text = (
        "services:\n- name: a\n  handler:\n    type: relay\n    metadata:\n"
        "      a: yes\n      b: 1:30\n      c: 2024-01-02\n      d: true\n"
        "      e: 010\n      f: 1.5\n      g: ~\n"
    )
    md = load_yaml(text).services[0].handler.metadata
    assert md == {"a": "yes", "b": "1:30", "c": "2024-01-02", "d": True, "e": 8, "f": 1.5}


def test_yaml_structure_keys_are_case_insensitive_and_durations_parsed() -> None:
    text = (
        "Services:\n- Name: a\n  Addr: :1\n  Handler: {Type: tcp}\n  Forwarder:\n"
        "    Selector: {strategy: rand, MaxFails: 3, failtimeout: 1m30s}\n"
        "    nodes: [{name: n, addr: 'x:1', filter: {host: h.example, protocol: http}}]\n"
        "ingresses: [{name: i, reload: 90}]\n"
    )
    config = load_yaml(text)
    fwd = config.services[0].forwarder
    assert fwd is not None and fwd.selector is not None
    assert (fwd.selector.strategy, fwd.selector.maxFails, fwd.selector.failTimeout) == (
        "rand",
        3,
        90.0,
    )
    node = fwd.nodes[0]
    assert (node.host, node.protocol, node.filter) == ("h.example", "http", None)
    assert config.ingresses[0].reload == 90.0
