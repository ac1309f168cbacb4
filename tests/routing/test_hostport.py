"""host:port text (burrow.common.hostport): Go's split, the strict reading, the join.

The round-trip properties are fuzzed in tests/fuzz/test_hostport_fuzz.py.
"""

from __future__ import annotations

import pytest

from burrow.common.hostport import (
    IPV6_FIX,
    HostPortError,
    canonical_ipv6,
    join_host_port,
    parse_host_port,
    split_host_port,
    split_host_rest,
    strip_port,
    unbracket,
    unmap_ipv4,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("example.com:80", ("example.com", "80")),
        ("[::1]:8443", ("::1", "8443")),
        ("[fe80::1%eth0]:22", ("fe80::1%eth0", "22")),
        (":0", ("", "0")),
        ("host:", ("host", "")),
        ("host:http", ("host", "http")),  # Go does not check the port
        ("[::1]", None),  # missing port
        ("::1", None),  # too many colons
        ("::1:8443", None),
        ("example.com", None),
        ("[::1]x:80", None),
        ("[::1]:80:90", None),
        ("a]:80", None),
        ("a[b:80", None),
        ("", None),
    ],
)
def test_split_is_go_split_host_port(text: str, expected: tuple[str, str] | None) -> None:
    assert split_host_port(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("example.com:8443", ("example.com", 8443)),
        (":8443", ("", 8443)),
        ("127.0.0.1:0", ("127.0.0.1", 0)),
        ("[::1]:8443", ("::1", 8443)),
        ("[::]:80", ("::", 80)),
        ("[2001:db8::7]:65535", ("2001:db8::7", 65535)),
        ("[fe80::1%eth0]:22", ("fe80::1%eth0", 22)),
    ],
)
def test_parse_reads_written_addresses(text: str, expected: tuple[str, int]) -> None:
    assert parse_host_port(text) == expected


@pytest.mark.parametrize(
    ("text", "problem", "fix"),
    [
        ("::1:8443", "IPv6 address '::1:8443' needs brackets", IPV6_FIX),
        ("2001:db8::1", "IPv6 address '2001:db8::1' needs brackets", IPV6_FIX),
        ("[::1", "missing ']' in '[::1'", IPV6_FIX),
        ("[::1]8443", "unexpected '8443' after ']' in '[::1]8443'", IPV6_FIX),
        (
            "[example.com]:80",
            "'example.com' in '[example.com]:80' is not an IPv6 address",
            IPV6_FIX,
        ),
        ("[::1%]:80", "'::1%' in '[::1%]:80' is not an IPv6 address", IPV6_FIX),
        ("a]:80", "stray bracket in 'a]:80'", IPV6_FIX),
        ("host:99999", "port '99999' is not a number from 0 to 65535", None),
        ("host:+80", "port '+80' is not a number from 0 to 65535", None),
        ("host:٨٠", "port '٨٠' is not a number from 0 to 65535", None),
        ("host", "address 'host' has no port", None),
        ("[::1]", "address '[::1]' has no port", None),
        ("host:", "address 'host:' has no port", None),
    ],
)
def test_parse_errors_say_how_to_write_it(text: str, problem: str, fix: str | None) -> None:
    with pytest.raises(HostPortError) as info:
        parse_host_port(text)
    assert info.value.problem == problem
    assert info.value.fix == (fix or 'write it as "host:port", ":port" or "[::1]:port"')


def test_parse_defaults_and_bare_ipv6() -> None:
    assert parse_host_port("host", default_port=80) == ("host", 80)
    assert parse_host_port("host:", default_port=80) == ("host", 80)
    assert parse_host_port("[::1]", default_port=80) == ("::1", 80)
    assert parse_host_port("[::1]:", default_port=80) == ("::1", 80)
    assert parse_host_port("::1", default_port=80, bare_ipv6=True) == ("::1", 80)
    with pytest.raises(HostPortError):
        parse_host_port("::1", default_port=80)  # a written address must bracket it
    with pytest.raises(HostPortError):
        parse_host_port("a:b:c", default_port=80, bare_ipv6=True)  # not an IPv6 literal


def test_join_strip_unbracket() -> None:
    assert join_host_port("::1", 8443) == "[::1]:8443"
    assert join_host_port("127.0.0.1", "80") == "127.0.0.1:80"
    assert join_host_port("", 0) == ":0"
    assert strip_port("[::1]:40000") == "::1"
    assert strip_port("10.0.0.1:40000") == "10.0.0.1"
    assert strip_port("::1") == "::1"
    assert strip_port(":80") == ":80"  # an empty host keeps the text, as gost's ingress does
    assert unbracket("[::1]") == "::1" and unbracket("::1") == "::1" and unbracket("[]") == "[]"


def test_canonical_ipv6() -> None:
    assert canonical_ipv6("0:0:0:0:0:0:0:1") == "::1"
    assert canonical_ipv6("2001:DB8::7") == "2001:db8::7"
    assert canonical_ipv6("fe80::1%eth0") == "fe80::1%eth0"
    assert canonical_ipv6("fe80::1%") is None
    assert canonical_ipv6("example.com") is None
    assert canonical_ipv6("10.0.0.1") is None


def test_split_host_rest_for_shorthand_entries() -> None:
    assert split_host_rest("app.localhost:uuid") == ("app.localhost", ":", "uuid")
    assert split_host_rest("[::1]:$uuid") == ("::1", ":", "$uuid")
    assert split_host_rest("::1:uuid") == ("", ":", ":1:uuid")  # gost's first-':' split
    assert split_host_rest("nocolon") == ("nocolon", "", "")


@pytest.mark.parametrize(
    ("host", "shown"),
    [
        ("::ffff:127.0.0.1", "127.0.0.1"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("::1", "::1"),
        ("127.0.0.1", "127.0.0.1"),
        ("::ffff:zz.1", "::ffff:zz.1"),
        ("2001:db8::ffff:1.2.3.4", "2001:db8::ffff:1.2.3.4"),
    ],
)
def test_ipv4_peers_of_a_dual_stack_socket_are_shown_as_ipv4(host: str, shown: str) -> None:
    assert unmap_ipv4(host) == shown
