"""Client-side forwarder node matching (late-relay semantics) and the round-robin cursor."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from burrow.routing.nodes import RoundRobin, host_matches, match_nodes


@dataclass(frozen=True)
class Node:
    name: str
    host: str | None = None
    protocol: str | None = None


def names(nodes: list[Node]) -> list[str]:
    return [n.name for n in nodes]


def seed_nodes(seed_dir: Path, config: str) -> list[Node]:
    conf = yaml.safe_load((seed_dir / "configs" / config).read_text())
    return [
        Node(n["name"], n.get("host"), n.get("protocol"))
        for n in conf["services"][0]["forwarder"]["nodes"]
    ]


def test_seed_client_routing_example(seed_dir: Path) -> None:
    nodes = seed_nodes(seed_dir, "03-client-routing-sniffing.yaml")
    assert names(nodes) == ["example-com", "sub-example-com", "fallback"]
    assert names(match_nodes(nodes, "example.com")) == ["example-com"]
    assert names(match_nodes(nodes, "example.com:80")) == ["example-com"]
    assert names(match_nodes(nodes, "sub.example.com")) == ["sub-example-com"]
    assert names(match_nodes(nodes, "sub.example.com:443", "tls")) == ["sub-example-com"]
    assert names(match_nodes(nodes, "abc.example.com")) == ["fallback"]
    assert names(match_nodes(nodes, "Sub.Example.COM")) == ["sub-example-com"]
    assert names(match_nodes(nodes, "")) == ["example-com", "sub-example-com", "fallback"]


def test_seed_tcp_services_example(seed_dir: Path) -> None:
    nodes = seed_nodes(seed_dir, "07-client-tcp-services.yaml")
    assert names(match_nodes(nodes, "ssh.srv-2.local")) == ["ssh"]
    assert names(match_nodes(nodes, "redis.srv-3.local:6379")) == ["redis"]
    # No fallback node: a host matching nothing gets no candidate at all.
    assert match_nodes(nodes, "dns.srv-2.local") == []
    assert names(match_nodes(nodes, "")) == ["ssh", "redis"]


def test_all_matching_nodes_are_candidates() -> None:
    nodes = [
        Node("a", "x.com"),
        Node("b", ".x.com"),
        Node("c"),
        Node("d", "x.com"),
        Node("e", "y.com"),
    ]
    assert names(match_nodes(nodes, "x.com")) == ["a", "b", "d"]
    assert names(match_nodes(nodes, "w.x.com")) == ["b"]
    assert names(match_nodes(nodes, "z.com")) == ["c"]


def test_suffix_quirk_is_kept() -> None:
    nodes = [Node("dot", ".example.com"), Node("fallback")]
    for host in ("example.com", "a.example.com", "a.b.example.com", "xexample.com"):
        assert names(match_nodes(nodes, host)) == ["dot"], host
    assert names(match_nodes(nodes, "example.org")) == ["fallback"]
    assert names(match_nodes(nodes, "example.com.")) == ["fallback"]


@pytest.mark.parametrize(
    "pattern", [".example.com", "*.example.com", "*example.com", ".EXAMPLE.com", "*.Example.Com"]
)
def test_host_matches_patterns(pattern: str) -> None:
    assert host_matches(pattern, "example.com")
    assert host_matches(pattern, "deep.sub.example.com")
    assert host_matches(pattern, "badexample.com")
    assert not host_matches(pattern, "example.org")
    assert not host_matches(pattern, "example.co")


def test_exact_node_host() -> None:
    assert host_matches("example.com", "EXAMPLE.COM")
    assert not host_matches("example.com", "a.example.com")
    assert not host_matches("example.com", "xexample.com")
    assert host_matches("*", "anything")  # "*" reads as "." and "" is a suffix of every host


def test_empty_host_filters_by_sniffed_protocol() -> None:
    nodes = [
        Node("web", "a.com", "http"),
        Node("tls", None, "tls"),
        Node("any"),
        Node("web2", None, "HTTP"),
        Node("blank", None, ""),
    ]
    assert names(match_nodes(nodes, "", "http")) == ["web", "any", "web2", "blank"]
    assert names(match_nodes(nodes, "", "tls")) == ["tls", "any", "blank"]
    assert names(match_nodes(nodes, "", "ssh")) == ["any", "blank"]
    assert names(match_nodes(nodes, "", None)) == ["web", "tls", "any", "web2", "blank"]
    # With a host, the protocol plays no part (late-relay semantics).
    assert names(match_nodes(nodes, "a.com", "tls")) == ["web"]
    assert names(match_nodes(nodes, "b.com", "tls")) == ["tls", "any", "web2", "blank"]


def test_port_only_host_is_not_stripped_to_nothing() -> None:
    nodes = [Node("p", ":80"), Node("fallback")]
    assert names(match_nodes(nodes, ":80")) == ["p"]
    assert names(match_nodes(nodes, "[::1]:80")) == ["fallback"]
    assert names(match_nodes([Node("v6", "::1")], "[::1]:80")) == ["v6"]


def test_round_robin() -> None:
    rr = RoundRobin()
    assert rr.pick([]) is None
    assert [rr.pick("abc") for _ in range(7)] == ["a", "b", "c", "a", "b", "c", "a"]
    other = RoundRobin()
    assert [other.pick([1, 2]) for _ in range(3)] == [1, 2, 1]
    # One cursor per list: the position advances whatever subset is offered.
    shared = RoundRobin()
    assert shared.pick(["x", "y"]) == "x"
    assert shared.pick(["p", "q", "r"]) == "q"
    assert shared.pick([]) is None
    assert shared.pick(["p", "q", "r"]) == "r"


def test_ipv6_node_hosts() -> None:
    nodes = [Node("v6", "::1"), Node("v6-bracketed", "[2001:db8::7]"), Node("fallback")]
    assert names(match_nodes(nodes, "[::1]:8080")) == ["v6"]
    assert names(match_nodes(nodes, "[0:0::1]")) == ["v6"]
    assert names(match_nodes(nodes, "[2001:DB8::7]:443")) == ["v6-bracketed"]
    assert names(match_nodes(nodes, "[::2]:80")) == ["fallback"]
