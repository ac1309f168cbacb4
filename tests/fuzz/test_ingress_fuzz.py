"""Fuzzing the ingress table and its parsers: arbitrary text never raises."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from burrow.routing.ingress import (
    Ingress,
    Route,
    parse_endpoint,
    parse_rule_lines,
    parse_tunnel_shorthand,
)
from burrow.routing.nodes import match_nodes

FUZZ = settings(max_examples=300, deadline=None)
UUID = "4d21094e-b74c-4916-86c1-d9fa36ea677b"

hostish = st.text(alphabet="abcAB.-*:[]1$ \t\u0130\u212a", max_size=24)
anytext = st.one_of(st.text(max_size=60), hostish)
endpoint = st.one_of(st.just(UUID), st.just("$" + UUID), anytext)


@FUZZ
@given(rules=st.lists(st.tuples(anytext, endpoint), max_size=8), host=anytext)
def test_lookup_never_raises(rules: list[tuple[str, str]], host: str) -> None:
    ing = Ingress(rules)
    route = ing.lookup(host)
    assert route is None or isinstance(route, Route)
    if route is not None:
        assert route.rule in dict(ing.rules())
        assert len(route.tunnel_id.uuid) == 16
    assert len(ing) == len(ing.rules()) <= len(rules)


@FUZZ
@given(
    label=st.from_regex(r"[a-z0-9-]{1,10}(\.[a-z0-9-]{1,10}){0,3}", fullmatch=True),
    sub=st.from_regex(r"([a-z0-9-]{1,6}\.){0,3}", fullmatch=True),
    port=st.one_of(st.just(""), st.integers(0, 65535).map(lambda p: f":{p}")),
)
def test_wildcard_covers_every_subdomain(label: str, sub: str, port: str) -> None:
    ing = Ingress([("*." + label, UUID)])
    route = ing.lookup(sub + label.upper() + port)
    assert route is not None and route.rule == "." + label


@FUZZ
@given(text=st.text(max_size=300))
def test_parsers_never_raise(text: str) -> None:
    for hostname, ep in parse_rule_lines(text):
        assert hostname and ep and not any(c in hostname + ep for c in " \t\n#")
    for hostname, ep in parse_tunnel_shorthand(text):
        assert "," not in hostname + ep and ":" not in hostname
    tid, private = parse_endpoint(text)
    assert len(tid.uuid) == 16 and private == text.startswith("$")
    Ingress(parse_rule_lines(text)).lookup(text)
    match_nodes([], text, text)
