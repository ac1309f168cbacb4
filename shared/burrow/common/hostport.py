"""``host:port`` text: the one way Burrow splits and joins addresses (IPv6 in brackets).

Sans-IO, no DNS. Two readings of the same text, because gost has two:

* ``split_host_port`` is Go's ``net.SplitHostPort``, the split gost does everywhere (relay
  Addr features, ingress lookups, Host headers): ``[::1]:80`` -> ``("::1", "80")``, and None
  where Go returns an error (``::1``, ``[::1]``, ``a:b:c``). The port is not checked.
* ``parse_host_port`` is the strict reading for addresses a user writes (config ``addr``,
  ``entryPoint``, chain and forwarder nodes, visitor targets) and for HTTP ``Host`` values: the
  port must be 0..65535 and an IPv6 literal must be in brackets, or a HostPortError says how to
  write it.

``join_host_port`` is the inverse of both: ``join_host_port("::1", 80) == "[::1]:80"``.
"""

from __future__ import annotations

import functools
import ipaddress
from typing import Final

MAX_PORT: Final = 65535
IPV6_FIX: Final = "write IPv6 addresses in brackets: [::1]:8443"
FORM_FIX: Final = 'write it as "host:port", ":port" or "[::1]:port"'


class HostPortError(ValueError):
    """A malformed ``host:port``: ``problem`` says what is wrong and ``fix`` how to write it."""

    def __init__(self, problem: str, fix: str = FORM_FIX) -> None:
        super().__init__(f"{problem} ({fix})")
        self.problem = problem
        self.fix = fix


def split_host_port(text: str) -> tuple[str, str] | None:
    """Go's ``net.SplitHostPort``: (host without brackets, port text), or None where Go errs."""
    i = text.rfind(":")
    if i < 0:
        return None
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or end + 1 != i:
            # no "]", nothing after it, or something other than the last ":" right after it
            return None
        host, j, k = text[1:end], 1, end + 1
    else:
        host, j, k = text[:i], 0, 0
        if ":" in host:
            return None  # "too many colons": an IPv6 literal needs brackets
    if "[" in text[j:] or "]" in text[k:]:
        return None
    return host, text[i + 1 :]


def join_host_port(host: str, port: int | str) -> str:
    """``host:port``; a host containing ``:`` (IPv6) is bracketed, as Go's ``JoinHostPort``."""
    if ":" in host:
        return f"[{host}]:{port}"
    return f"{host}:{port}"


def strip_port(text: str) -> str:
    """The host of ``host:port`` / ``[v6]:port``; text that has no port comes back unchanged."""
    parts = split_host_port(text)
    return parts[0] if parts is not None and parts[0] else text


def split_host_rest(entry: str) -> tuple[str, str, str]:
    """``host:rest`` split at the first ``:`` after the host; ``[v6]:rest`` gives the v6 host.

    For ``host:endpoint`` lists (the ``tunnel=`` shorthand), where only the host is an address.
    """
    if entry.startswith("["):
        end = entry.find("]")
        if end > 0 and entry[end + 1 : end + 2] == ":":
            return entry[1:end], ":", entry[end + 2 :]
    return entry.partition(":")


def unbracket(host: str) -> str:
    """``[::1]`` -> ``::1``; anything else unchanged."""
    if len(host) > 2 and host[0] == "[" and host[-1] == "]":
        return host[1:-1]
    return host


@functools.lru_cache(maxsize=1024)
def canonical_ipv6(host: str) -> str | None:
    """The compressed lower-case form of an IPv6 literal (zone kept), or None if it is not one."""
    if ":" not in host:
        return None
    addr, pct, zone = host.partition("%")
    try:
        ip = ipaddress.IPv6Address(addr)
    except ValueError:
        return None
    if pct and not zone:
        return None
    # A key, not a display form: ::ffff:1.2.3.4 stays an IPv6 key (one key with ::ffff:102:304)
    # rather than becoming 1.2.3.4, so a rule written for one family never catches the other.
    return f"{ip.compressed}{pct}{zone}"


def is_ipv6_literal(host: str) -> bool:
    """True for ``::1``, ``2001:db8::7``, ``fe80::1%eth0`` (no brackets)."""
    return canonical_ipv6(host) is not None


def _port(text: str) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 5 or int(text) > MAX_PORT:
        raise HostPortError(f"port {text!r} is not a number from 0 to {MAX_PORT}")
    return int(text)


def parse_host_port(
    text: str, *, default_port: int | None = None, bare_ipv6: bool = False
) -> tuple[str, int]:
    """Strictly read ``host:port``, ``:port``, ``[v6]:port`` -> (host without brackets, port).

    ``default_port`` is used when the port is missing or empty (``host``, ``host:``, ``[::1]``);
    without it a missing port is an error. ``bare_ipv6`` accepts an unbracketed IPv6 literal as
    a host with the default port (HTTP ``Host: ::1``); otherwise ``::1:8443`` is an error whose
    fix is IPV6_FIX, since it cannot be told apart from the address ``::1:8443``.
    """
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise HostPortError(f"missing ']' in {text!r}", IPV6_FIX)
        host, rest = text[1:end], text[end + 1 :]
        if not is_ipv6_literal(host):
            raise HostPortError(f"{host!r} in {text!r} is not an IPv6 address", IPV6_FIX)
        if rest and not rest.startswith(":"):
            raise HostPortError(f"unexpected {rest!r} after ']' in {text!r}", IPV6_FIX)
        port_text = rest[1:] if rest else ""
    elif text.count(":") > 1:
        if bare_ipv6 and default_port is not None and is_ipv6_literal(text):
            return text, default_port
        raise HostPortError(f"IPv6 address {text!r} needs brackets", IPV6_FIX)
    else:
        host, _, port_text = text.partition(":")
    if "[" in host or "]" in host:
        raise HostPortError(f"stray bracket in {text!r}", IPV6_FIX)
    if not port_text:
        if default_port is None:
            raise HostPortError(f"address {text!r} has no port")
        return host, default_port
    return host, _port(port_text)


def unmap_ipv4(host: str) -> str:
    """``::ffff:192.0.2.1`` (an IPv4 peer on a dual-stack socket) -> ``192.0.2.1``.

    Peers are shown and keyed by their real family, so per-source limits and bans count an IPv4
    visitor once whichever socket family accepted it.
    """
    if not host.startswith("::ffff:") or "." not in host:
        return host
    try:
        mapped = ipaddress.IPv6Address(host).ipv4_mapped
    except ValueError:
        return host
    return host if mapped is None else str(mapped)
