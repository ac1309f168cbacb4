"""Config parsers on arbitrary input: a Config or a ConfigError, never anything else.

Also: whatever loads converts to TOML that loads back equal, and plans either build or raise
ConfigError; warnings collected on the way are well-formed ConfigWarning data.
"""

from __future__ import annotations

from typing import Any

import msgspec
import tomli_w
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from burrow.config.dump import to_toml
from burrow.config.errors import ConfigError
from burrow.config.gost_cli import load_cli
from burrow.config.gost_yaml import load_json, load_yaml, load_yaml_with_lines
from burrow.config.load import load_checked
from burrow.config.notices import ConfigWarning
from burrow.config.plan import build_plans
from burrow.config.schema import Config
from burrow.config.toml_load import load_toml

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

KEYS = [
    "services",
    "chains",
    "ingresses",
    "authers",
    "burrow",
    "name",
    "addr",
    "handler",
    "listener",
    "forwarder",
    "metadata",
    "type",
    "chain",
    "auth",
    "auther",
    "authers",
    "nodes",
    "hops",
    "connector",
    "dialer",
    "selector",
    "strategy",
    "maxFails",
    "failTimeout",
    "rules",
    "hostname",
    "endpoint",
    "file",
    "path",
    "host",
    "filter",
    "protocol",
    "network",
    "username",
    "password",
    "workers",
    "log_level",
    "log_format",
    "tunnelID",
    "tunnel.id",
    "entryPoint",
    "ingress",
    "keepalive",
    "ttl",
    "sniffing",
    "mux.version",
    "readTimeout",
    "Addr",
    "NAME",
    # accepted but unused: gost sections, typos, not-yet-used keys (warnings, never errors)
    "log",
    "api",
    "entryPiont",
    "admin",
    "reload",
    "bypass",
]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.sampled_from(
        [
            "relay",
            "tunnel",
            "rtcp",
            "rudp",
            "tcp",
            "udp",
            ":8443",
            "10s",
            "chain-0",
            "4d21094e-b74c-4916-86c1-d9fa36ea677b",
        ]
    ),
    st.text(max_size=12),
)
TREES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(KEYS), inner, max_size=5)
    ),
    max_leaves=20,
)
CONFIG_LIKE = st.dictionaries(st.sampled_from(KEYS[:5]), TREES, max_size=5)


def outcome(fn: Any, *args: Any) -> Config | None:
    try:
        config = fn(*args)
    except ConfigError:
        return None
    assert isinstance(config, Config)
    return config


def round_trips(config: Config | None) -> None:
    if config is None:
        return
    assert load_toml(to_toml(config)) == config
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(config), type=Config) == config
    try:
        plans = build_plans(config)
    except ConfigError:
        return
    assert len(plans) == len(config.services)


@FUZZ
@given(st.text(max_size=400))
def test_yaml_text(text: str) -> None:
    outcome(load_yaml, text)


@FUZZ
@given(CONFIG_LIKE)
def test_yaml_shaped(data: dict[str, Any]) -> None:
    round_trips(outcome(load_yaml, yaml.safe_dump(data)))


@FUZZ
@given(st.text(max_size=400))
def test_json_text(text: str) -> None:
    outcome(load_json, text)


@FUZZ
@given(st.text(max_size=400))
def test_toml_text(text: str) -> None:
    outcome(load_toml, text)


def _toml_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _toml_safe(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_toml_safe(v) for v in value if v is not None]
    return value


@FUZZ
@given(CONFIG_LIKE)
def test_toml_shaped(data: dict[str, Any]) -> None:
    try:
        text = tomli_w.dumps(_toml_safe(data))
    except (TypeError, ValueError):
        return  # not expressible in TOML (e.g. int beyond 64 bits, mixed arrays): nothing to load
    round_trips(outcome(load_toml, text))


T1 = "4d21094e-b74c-4916-86c1-d9fa36ea677b"
META_KEYS = [
    "entryPoint",
    "ingress",
    "tunnel",
    "tunnel.direct",
    "tunnelID",
    "tunnel.id",
    "tunnel.weight",
    "readTimeout",
    "nodelay",
    "connectTimeout",
    "relay.proxy",
    "sniffing",
    "sniffing.timeout",
    "keepalive",
    "ttl",
    "readBufferSize",
    "mux.version",
    "mux.maxStreamBuffer",
    "mux.keepaliveInterval",
    "mux.keepaliveTimeout",
    "entrypoints",
    "other",
]
META_VALUES = st.one_of(
    st.booleans(),
    st.integers(-5, 70000),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(
        [
            "true",
            "0",
            "10s",
            "1m",
            "x",
            ":80",
            "127.0.0.1:8080",
            "[::1]:81",
            T1,
            f"a.example:{T1}",
            "ingress-0",
            "chain-0",
        ]
    ),
    st.lists(
        st.sampled_from([":82", {"addr": ":83"}, {"addr": ":84", "ingress": "other"}, 5]),
        max_size=2,
    ),
)
METADATA = st.dictionaries(st.sampled_from(META_KEYS), META_VALUES, max_size=4)
ADDR_LIST = [
    ":8443",
    ":0",
    "127.0.0.1:9000",
    "[::1]:80",
    "host",
    "x.example:0",
    "",
    ":99999",
    "a b:1",
]
ADDRS = st.sampled_from(ADDR_LIST)


LISTENER = {
    "relay": "tcp",
    "tunnel": "tcp",
    "rtcp": "rtcp",
    "rudp": "rudp",
    "tcp": "tcp",
    "udp": "udp",
    "socks5": "tcp",
}


def mostly(draw: st.DrawFn, good: Any, *bad: Any) -> Any:
    """``good`` nine times in ten, else one of ``bad``: valid enough to reach the plans often."""
    return (
        good
        if draw(st.sampled_from([True] * 9 + [False])) or not bad
        else draw(st.sampled_from(bad))
    )


@st.composite
def gost_configs(draw: st.DrawFn) -> dict[str, Any]:
    """gost-shaped configs: right structure, random roles, references and option values."""
    md = draw(METADATA)
    md.update(
        {"tunnelID": mostly(draw, T1, "nope", "00000000-0000-0000-0000-000000000000")}
        if mostly(draw, True, False)
        else {}
    )
    node: dict[str, Any] = {
        "name": "node-0",
        "addr": mostly(draw, draw(ADDRS), ":1"),
        "connector": {
            "type": mostly(draw, draw(st.sampled_from(["relay", "tunnel"])), "http"),
            "metadata": md,
        },
    }
    if draw(st.booleans()):
        node["dialer"] = {"type": mostly(draw, "tcp", "tls")}
    services = []
    for i in range(draw(st.integers(1, 3))):
        kind = mostly(
            draw, draw(st.sampled_from(["relay", "tunnel", "rtcp", "rudp", "tcp", "udp"])), "socks5"
        )
        svc: dict[str, Any] = {
            "name": f"s{i}",
            "addr": mostly(draw, f":{8000 + i}", *ADDR_LIST),
            "handler": {"type": kind, "metadata": draw(METADATA)},
            "listener": {
                "type": mostly(draw, LISTENER[kind], "udp", "tcp"),
                "metadata": draw(METADATA),
            },
        }
        chain = mostly(draw, "chain-0", "missing", None)
        if chain and kind not in ("relay", "tunnel"):
            svc["handler" if kind in ("tcp", "udp") else "listener"]["chain"] = chain
        targets = draw(st.lists(mostly(draw, st.just("a.example:80"), ADDRS), max_size=2))
        if targets and kind not in ("relay", "tunnel"):
            svc["forwarder"] = {
                "nodes": [{"name": f"t{j}", "addr": a} for j, a in enumerate(targets)]
            }
        services.append(svc)
    rules = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["a.example", ".b.example", ""]),
                st.sampled_from([T1, f"${T1}", "nope", ""]),
            ),
            max_size=3,
        )
    )
    return {
        "services": services,
        "chains": [{"name": "chain-0", "hops": [{"name": "hop-0", "nodes": [node]}]}],
        "ingresses": [
            {"name": "ingress-0", "rules": [{"hostname": h, "endpoint": e} for h, e in rules]}
        ],
    }


@FUZZ
@given(gost_configs())
def test_gost_shaped_configs(data: dict[str, Any]) -> None:
    config = outcome(load_yaml, yaml.safe_dump(data))
    assert config is not None  # the structure is always right; only plans may refuse it
    round_trips(config)
    round_trips(outcome(load_toml, tomli_w.dumps(data)))


URL_PARTS = st.lists(
    st.one_of(
        st.sampled_from(
            [
                "relay://",
                "tunnel://",
                "rtcp://",
                "rudp://",
                "tcp://",
                "udp://",
                "relay+tls://",
                "https://",
                "socks5://",
                ":",
                "[",
                "]",
                "@",
                "/",
                ",",
                "?",
                "&",
                "=",
                "%",
                "#",
                "user:pass@",
                ":8443",
                "127.0.0.1",
                "[::1]",
                "tunnel.id=",
                "tunnelID=",
                "4d21094e-b74c-4916-86c1-d9fa36ea677b",
                "entryPoint=:80",
                "auth=",
                "dXNlcjpwYXNz",
                "keepalive=true",
                "ttl=",
                "10s",
                "mux.version=",
                "tunnel.weight=",
                "maxFails=x",
                "failTimeout=1s",
                "tunnel=",
                "a.example:",
                "$",
            ]
        ),
        st.text(max_size=6),
    ),
    max_size=12,
).map("".join)


@FUZZ
@given(st.lists(URL_PARTS, min_size=1, max_size=3), st.lists(URL_PARTS, max_size=2))
def test_cli_urls(services: list[str], nodes: list[str]) -> None:
    round_trips(outcome(load_cli, services, nodes))


def well_formed(warnings: list[ConfigWarning]) -> None:
    for w in warnings:
        assert isinstance(w, ConfigWarning) and w.kind in ("unknown", "gost", "not-yet")
        assert w.key and w.problem and w.fix
        assert str(w).endswith(f"(fix: {w.fix})") and w.key in str(w)


@FUZZ
@given(CONFIG_LIKE)
def test_yaml_warnings_are_data(data: dict[str, Any]) -> None:
    warnings: list[ConfigWarning] = []
    try:
        config = load_yaml_with_lines(yaml.safe_dump(data), warnings=warnings)[0]
        build_plans(config, warnings=warnings)
    except ConfigError:
        pass
    well_formed(warnings)


@FUZZ
@given(st.lists(URL_PARTS, min_size=1, max_size=3), st.lists(URL_PARTS, max_size=2))
def test_cli_warnings_are_data(services: list[str], nodes: list[str]) -> None:
    try:
        loaded = load_checked(None, services, nodes)
    except ConfigError:
        return
    well_formed(loaded.warnings)
