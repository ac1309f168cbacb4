"""Server-side ingress: public hostname -> tunnel ID (docs/configuration.md, ``[[ingresses]]``).

Rules are ``(hostname, endpoint)`` pairs. One leading ``*`` is removed from the hostname to form
the key (``*.example.com`` -> ``.example.com``, ``*example.com`` -> ``example.com``, exact). A key
starting with ``.`` matches its apex and every subdomain at any depth; an exact key beats every
wildcard and a deeper wildcard beats a shallower one. Later rules replace earlier ones with the
same key. The endpoint is a UUID, prefixed with ``$`` when the tunnel is private for that rule.

Deliberate difference from gost: gost compares hostnames case-sensitively. Burrow lower-cases
(ASCII only) both the rule keys and the looked-up host, because DNS names are case-insensitive
and browsers send lower-case Host headers, so ``Example.COM`` reaches the ``example.com`` tunnel.
Everything else follows gost, including that a trailing dot (``example.com.``) matches no
``example.com`` rule and that ports never take part. IPv6 literals: gost strips the port of
``[::1]:8080`` to ``::1`` but leaves a port-less ``[::1]`` bracketed; Burrow also unbrackets and
compresses literals in rules and hosts, so a ``::1`` (or ``[::1]``) rule matches both.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from burrow.common.hostport import canonical_ipv6, split_host_rest, strip_port, unbracket
from burrow.common.ids import InvalidIdError, TunnelId

ZERO_ID: Final = TunnelId(bytes(16))
PRIVATE_MARK: Final = "$"

_ASCII_LOWER: Final = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_H36 = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
# The forms Google's uuid.Parse takes (the parser gost's ingress uses), nothing looser.
_UUID_FORMS: Final = re.compile(
    rf"(?:[uU][rR][nN]:[uU][uU][iI][dD]:)?{_H36}|\{{{_H36}\}}|[0-9a-fA-F]{{32}}"
)


def fold_case(host: str) -> str:
    """ASCII lower-case: DNS case-insensitivity, without Unicode case mapping surprises."""
    return host.translate(_ASCII_LOWER)


def host_key(host: str) -> str:
    """A host as rules are keyed: lower-cased, an IPv6 literal unbracketed and compressed.

    ``[::1]``, ``::1`` and ``0:0::1`` are one key, so a rule for ``::1`` routes
    ``Host: [::1]:8080`` (port stripped first) and ``Host: [::1]`` alike.
    """
    h = fold_case(host)
    if ":" in h:
        return canonical_ipv6(unbracket(h)) or h
    return h


def parse_endpoint(endpoint: str) -> tuple[TunnelId, bool]:
    """Endpoint text -> (tunnel ID, private); anything that is not a UUID gives the zero ID."""
    private = endpoint.startswith(PRIVATE_MARK)
    text = endpoint[len(PRIVATE_MARK) :] if private else endpoint
    if _UUID_FORMS.fullmatch(text) is None:
        return ZERO_ID, private
    try:
        return TunnelId.parse(text), private
    except InvalidIdError:
        return ZERO_ID, private


def rule_key(hostname: str) -> str:
    """The map key of a rule hostname: one leading ``*`` removed, lower-cased."""
    return host_key(hostname.removeprefix("*"))


@dataclass(frozen=True, slots=True)
class Route:
    """Where a host goes: the tunnel, whether this rule makes it private, and the rule's key."""

    tunnel_id: TunnelId
    private: bool
    rule: str


class Ingress:
    """An ordered hostname -> endpoint rule table with gost's lookup order."""

    __slots__ = ("_endpoints", "_routes")

    def __init__(self, rules: Iterable[tuple[str, str]] = ()) -> None:
        self._routes: dict[str, Route] = {}
        self._endpoints: dict[str, str] = {}
        for hostname, endpoint in rules:
            key = rule_key(hostname)
            # A bare "*" leaves an empty key no lookup can reach: gost stores it, we drop it.
            if not key or not endpoint:
                continue
            tunnel_id, private = parse_endpoint(endpoint)
            self._routes[key] = Route(tunnel_id, private, key)
            self._endpoints[key] = endpoint

    def lookup(self, host: str) -> Route | None:
        """Route for a Host/SNI/Addr host: exact, then ``.host``, then each parent wildcard."""
        if not host:
            return None
        h = host_key(strip_port(host))
        route = self._routes.get(h) or self._routes.get("." + h)
        if route is not None or h.startswith("."):
            return route
        dot = h.find(".")
        while dot >= 0:
            route = self._routes.get(h[dot:])
            if route is not None:
                return route
            dot = h.find(".", dot + 1)
        return None

    def __len__(self) -> int:
        return len(self._routes)

    def rules(self) -> list[tuple[str, str]]:
        """The stored (key, endpoint) pairs, in first-insertion order."""
        return list(self._endpoints.items())


def _fields(line: str) -> list[str]:
    """gost's field split: tabs become spaces, split on spaces, trim, drop empties."""
    return [f for f in (p.strip() for p in line.replace("\t", " ").split(" ")) if f]


def parse_rule_lines(text: str) -> list[tuple[str, str]]:
    """Rules from the file / HTTP body format: ``hostname endpoint`` per line, ``#`` comments."""
    rules = []
    for line in text.split("\n"):
        fields = _fields(line.split("#", 1)[0])
        if len(fields) >= 2:
            rules.append((fields[0], fields[1]))
    return rules


def parse_tunnel_shorthand(value: str) -> list[tuple[str, str]]:
    """Rules from the ``tunnel=host:endpoint,host:$endpoint`` option (split at the first ':').

    Unlike gost, spaces around each rule are trimmed, and an IPv6 hostname may be written in
    brackets (``[::1]:<uuid>``); entries without ':' are skipped.
    """
    rules = []
    for item in value.split(","):
        hostname, sep, endpoint = split_host_rest(item.strip())
        if sep:
            rules.append((hostname, endpoint))
    return rules
