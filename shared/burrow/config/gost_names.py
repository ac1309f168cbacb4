"""gost v3's registered handler, listener, connector and dialer type names (x/registry).

The -L/-F parser (gost_cli.py) uses them to split ``scheme`` into its two halves as gost does.
"""

from __future__ import annotations

# Registered type names in gost v3 (x/registry): anything else falls back as gost does.
HANDLERS = frozenset(
    [
        "auto",
        "http",
        "http2",
        "http3",
        "socks",
        "socks4",
        "socks4a",
        "socks5",
        "ss",
        "ssu",
        "sni",
        "relay",
        "tunnel",
        "tcp",
        "udp",
        "rtcp",
        "rudp",
        "red",
        "redir",
        "redu",
        "dns",
        "file",
        "forward",
        "tap",
        "tun",
        "sshd",
        "serial",
        "unix",
        "metrics",
        "router",
    ]
)
DIALERS = frozenset(
    [
        "tcp",
        "udp",
        "tls",
        "mtls",
        "ws",
        "wss",
        "mws",
        "mwss",
        "http2",
        "h2",
        "h2c",
        "grpc",
        "kcp",
        "quic",
        "ssh",
        "sshd",
        "obfs-http",
        "obfs-tls",
        "ohttp",
        "otls",
        "pht",
        "phts",
        "dtls",
        "icmp",
        "ftcp",
        "http3",
        "h3",
        "wt",
        "mtcp",
        "unix",
        "serial",
    ]
)
# Listeners: every dialer's transport plus the listen-only ones.
LISTENERS = DIALERS | frozenset(["rtcp", "rudp", "red", "redir", "redu", "tun", "tap", "dns"])
CONNECTORS = frozenset(
    [
        "http",
        "http2",
        "socks",
        "socks4",
        "socks4a",
        "socks5",
        "ss",
        "ssu",
        "sni",
        "relay",
        "tunnel",
        "forward",
        "ssh",
        "sshd",
        "direct",
        "virtual",
        "unix",
        "serial",
        "router",
    ]
)
