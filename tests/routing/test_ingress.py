"""Ingress rules and lookup (docs/configuration.md), including the seed's private example."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from burrow.common.ids import TunnelId
from burrow.routing.ingress import (
    Ingress,
    Route,
    parse_endpoint,
    parse_rule_lines,
    parse_tunnel_shorthand,
    strip_port,
)

U1 = "4d21094e-b74c-4916-86c1-d9fa36ea677b"
U2 = "ac74d9dd-3125-442a-a7c1-f9e49e05faca"
U3 = "aede1f6a-762b-45da-b937-b6632356555a"
U4 = "00000000-0000-0000-0000-0000000000aa"
ZERO = TunnelId(bytes(16))


def target(ing: Ingress, host: str) -> str | None:
    """The tunnel text a host routes to (None when no rule matches)."""
    route = ing.lookup(host)
    return None if route is None else route.tunnel_id.text


def test_exact_rule_matches_only_itself() -> None:
    ing = Ingress([("example.com", U1)])
    assert target(ing, "example.com") == U1
    for host in ("a.example.com", "xexample.com", "example.co", "com", "example.com.", ""):
        assert ing.lookup(host) is None, host


@pytest.mark.parametrize("hostname", [".example.com", "*.example.com"])
def test_wildcard_matches_apex_and_any_depth(hostname: str) -> None:
    ing = Ingress([(hostname, U1)])
    for host in ("example.com", "a.example.com", "a.b.c.example.com"):
        assert target(ing, host) == U1, host
    # The label walk only ever tries whole labels: no plain suffix match on the server side.
    for host in ("xexample.com", "com", "example.org", "example.com.evil"):
        assert ing.lookup(host) is None, host
    assert ing.rules() == [(".example.com", U1)]


def test_star_without_dot_is_exact_and_bare_star_is_inert() -> None:
    ing = Ingress([("*example.com", U1), ("*", U2)])
    assert ing.rules() == [("example.com", U1)]
    assert target(ing, "example.com") == U1
    assert ing.lookup("a.example.com") is None
    assert ing.lookup("anything") is None


def test_deepest_wildcard_wins_and_exact_beats_wildcards() -> None:
    ing = Ingress(
        [
            (".example.com", U1),
            ("*.b.example.com", U2),
            ("x.b.example.com", U3),
            (".x.b.example.com", U4),
        ]
    )
    assert target(ing, "c.example.com") == U1
    assert target(ing, "b.example.com") == U2
    assert target(ing, "a.b.example.com") == U2
    assert target(ing, "deep.a.b.example.com") == U2
    assert target(ing, "x.b.example.com") == U3  # exact beats the ".x.b.example.com" wildcard
    assert target(ing, "y.x.b.example.com") == U4
    assert ing.lookup("example.org") is None


def test_route_carries_rule_key_and_privacy() -> None:
    ing = Ingress([("*.example.com", "$" + U1)])
    assert ing.lookup("a.example.com") == Route(TunnelId.parse(U1), True, ".example.com")


def test_top_level_wildcard() -> None:
    ing = Ingress([(".com", U1), ("example.com", U2)])
    assert target(ing, "example.com") == U2
    assert target(ing, "other.com") == U1
    assert target(ing, "a.b.com") == U1
    assert ing.lookup("com.org") is None


def test_host_starting_with_a_dot_skips_the_walk() -> None:
    ing = Ingress([(".com", U1), (".example.com", U2)])
    assert target(ing, ".example.com") == U2  # exact key ".example.com"
    assert ing.lookup(".a.example.com") is None  # would hit ".example.com" if it walked


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("example.com:8080", U1),
        ("example.com:", U1),  # Go's SplitHostPort accepts an empty port
        ("example.com:notaport", U1),  # and does not validate it
        ("a.example.com:443", U2),
        ("[::1]:80", U3),
        ("::1", U3),  # bare IPv6 literal: too many colons, kept whole
        ("[::1]", U3),  # bracketed without a port: gost keeps the brackets, Burrow drops them
        ("[0:0::1]:8080", U3),  # literals are compared compressed
        ("[::2]:80", None),
        ("[::1]x", None),
        ("10.0.0.1:80", U4),
        (":80", None),  # empty host part: gost keeps ":80" and finds nothing
        ("a:b:c", None),
    ],
)
def test_ports_are_stripped(host: str, expected: str | None) -> None:
    ing = Ingress([("example.com", U1), (".a.example.com", U2), ("::1", U3), ("10.0.0.1", U4)])
    assert target(ing, host) == expected


def test_strip_port_mirrors_go() -> None:
    assert strip_port("a.com:80") == "a.com"
    assert strip_port("[fe80::1%eth0]:80") == "fe80::1%eth0"
    assert strip_port("[::1]:80:90") == "[::1]:80:90"
    assert strip_port("a]b:80") == "a]b:80"
    assert strip_port("a[b:80") == "a[b:80"
    assert strip_port("plain") == "plain"


def test_trailing_dot_does_not_match() -> None:
    ing = Ingress([("example.com", U1), (".example.org", U2)])
    assert ing.lookup("example.com.") is None
    assert ing.lookup("a.example.org.") is None
    assert ing.lookup("example.com.:80") is None


def test_case_is_folded_on_both_sides() -> None:
    ing = Ingress([("Example.COM", U1), ("*.Wild.Example.org", U2)])
    assert ing.rules() == [("example.com", U1), (".wild.example.org", U2)]
    assert target(ing, "EXAMPLE.com") == U1
    assert target(ing, "example.com:80") == U1
    assert target(ing, "A.WILD.example.ORG") == U2
    # Only ASCII folds: a non-ASCII look-alike stays different.
    assert ing.lookup("EXAMPLE.CO\u039c") is None


def test_later_rule_wins_and_empty_rules_are_dropped() -> None:
    ing = Ingress(
        [
            ("a.com", U1),
            (".b.com", U1),
            ("*.b.com", U2),
            ("a.com", "$" + U3),
            ("", U4),
            ("c.com", ""),
        ]
    )
    assert len(ing) == 2
    assert ing.rules() == [("a.com", "$" + U3), (".b.com", U2)]
    assert ing.lookup("a.com") == Route(TunnelId.parse(U3), True, "a.com")
    assert target(ing, "x.b.com") == U2
    assert ing.lookup("c.com") is None
    assert len(Ingress()) == 0 and Ingress().lookup("a.com") is None


def test_unparseable_endpoint_routes_to_the_zero_id() -> None:
    ing = Ingress([("bad.example", "not-a-uuid"), ("badpriv.example", "$nope")])
    assert ing.lookup("bad.example") == Route(ZERO, False, "bad.example")
    route = ing.lookup("badpriv.example")
    assert route is not None and route.tunnel_id.is_zero and route.private


def test_seed_private_rules(seed_dir: Path) -> None:
    """srv-2/srv-3 share a tunnel: private under one name, public under the other."""
    conf = yaml.safe_load((seed_dir / "configs" / "04-server-private.yaml").read_text())
    rules = [(r["hostname"], r["endpoint"]) for r in conf["ingresses"][0]["rules"]]
    ing = Ingress(rules)
    srv2, srv3 = ing.lookup("srv-2.local"), ing.lookup("srv-3.local:80")
    assert srv2 is not None and srv3 is not None
    assert srv2.tunnel_id == srv3.tunnel_id == TunnelId.parse(U2)
    assert srv2.private and not srv3.private
    assert ing.lookup("srv-0.local") == Route(TunnelId.parse(U1), False, "srv-0.local")
    for name in ("ssh.srv-2.local", "redis.srv-3.local", "dns.srv-2.local", "dns.srv-3.local"):
        route = ing.lookup(name)
        assert route is not None and route.tunnel_id == TunnelId.parse(U3) and not route.private
    assert ing.lookup("srv-4.local") is None
    assert ing.lookup("x.srv-2.local") is None  # exact rules only, no wildcard


def test_seed_wildcard_rule(seed_dir: Path) -> None:
    conf = yaml.safe_load((seed_dir / "configs" / "01-server-public.yaml").read_text())
    ing = Ingress((r["hostname"], r["endpoint"]) for r in conf["ingresses"][0]["rules"])
    for host in ("example.com", "sub.example.com", "abc.example.com"):
        assert target(ing, host) == U1, host


@pytest.mark.parametrize(
    "text",
    [
        U1,
        U1.upper(),
        "urn:uuid:" + U1,
        "URN:UUID:" + U1.upper(),
        "{" + U1 + "}",
        U1.replace("-", ""),
        U1.replace("-", "").upper(),
    ],
)
def test_endpoint_uuid_forms(text: str) -> None:
    assert parse_endpoint(text) == (TunnelId.parse(U1), False)
    tid, private = parse_endpoint("$" + text)
    assert private and tid.text == U1 and tid.uuid == bytes.fromhex(U1.replace("-", ""))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "$",
        "garbage",
        U1[:-1],
        U1 + "0",
        " " + U1,
        U1 + " ",
        U1.replace("-", "_"),
        U1[:8] + U1[9:13] + "-" + U1[8] + U1[13:],  # hyphen in the wrong place
        "{" + U1,
        "urn:uuid:{" + U1 + "}",
        "{" + U1.replace("-", "") + "}",
        "$$" + U1,
        U1.replace("4", "g", 1),
        "00 112233445566778899aabbccdd ee",  # 32 characters, but not 32 hex digits
        "\uff10" * 32,
    ],
)
def test_endpoint_garbage_gives_zero(text: str) -> None:
    tid, _ = parse_endpoint(text)
    assert tid.is_zero and tid == ZERO and len(tid.uuid) == 16


def test_rule_file_format() -> None:
    text = (
        "# ingress rules\r\n"
        "example.com 4d21094e-b74c-4916-86c1-d9fa36ea677b\r\n"
        "\t.example.org\t\t$ac74d9dd-3125-442a-a7c1-f9e49e05faca  # private\n"
        "\n"
        "   \n"
        "lonely.example\n"
        "extra.example " + U3 + " ignored fields\n"
        "commented.example # " + U4 + "\n"
        "#disabled.example " + U4 + "\n"
        "last.example " + U4
    )
    assert parse_rule_lines(text) == [
        ("example.com", U1),
        (".example.org", "$" + U2),
        ("extra.example", U3),
        ("last.example", U4),
    ]
    assert parse_rule_lines("") == []
    ing = Ingress(parse_rule_lines(text))
    assert target(ing, "a.example.org") == U2
    assert ing.lookup("commented.example") is None


def test_tunnel_shorthand() -> None:
    value = f".example.com:{U1},example.org:${U2}"
    assert parse_tunnel_shorthand(value) == [(".example.com", U1), ("example.org", "$" + U2)]
    ing = Ingress(parse_tunnel_shorthand(value))
    assert ing.lookup("example.org") == Route(TunnelId.parse(U2), True, "example.org")
    assert target(ing, "www.example.com") == U1
    # Split at the first ':' only; entries without ':' are skipped; spaces around rules trimmed.
    assert parse_tunnel_shorthand(f"a.com:urn:uuid:{U1}, skipped ,b.com:{U3} ,") == [
        ("a.com", f"urn:uuid:{U1}"),
        ("b.com", U3),
    ]
    assert target(Ingress(parse_tunnel_shorthand(f"a.com:urn:uuid:{U1}")), "a.com") == U1
    assert parse_tunnel_shorthand("") == []


def test_ipv6_literal_rules() -> None:
    # A rule hostname may be an IPv6 literal, written bare or in brackets, in any spelling.
    for hostname in ("::1", "[::1]", "0:0:0:0:0:0:0:1", "[0::1]"):
        ing = Ingress([(hostname, U1), ("2001:DB8::7", U2)])
        assert ing.rules()[0][0] == "::1"
        for host in ("[::1]:8080", "[::1]", "::1", "[0:0::1]:80"):
            assert target(ing, host) == U1, (hostname, host)
        assert target(ing, "[2001:db8::7]:443") == U2
        assert ing.lookup("[::2]:8080") is None
    # The shorthand takes a bracketed IPv6 host (gost splits at the first ':' and cannot).
    assert parse_tunnel_shorthand(f"[::1]:{U1},[2001:db8::7]:${U2}") == [
        ("::1", U1),
        ("2001:db8::7", "$" + U2),
    ]
