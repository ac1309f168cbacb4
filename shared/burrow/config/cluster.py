"""``[burrow.cluster]``: the checked settings of this node's place in a Redis cluster.

Off unless ``redis`` is set. When it is, ``node``, ``advertise`` and a secret (``secret`` or
``secret_file``) are required: the node name keys this node's Redis entries, ``advertise`` is
where the other nodes send forwards, and the secret is what a forward must prove
(docs/cluster.md).
"""

from __future__ import annotations

import re

import msgspec

from burrow.common.hostport import HostPortError, join_host_port, parse_host_port

from .errors import ConfigError
from .schema import Config
from .secret_value import read_secret

# Shorter than this is guessable: every forward port is an online oracle for it.
MIN_SECRET = 16
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
# Node names travel in Redis keys, HTTP headers and log lines: keep them plain.
_NODE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


def redis_label(url: str) -> str:
    """``url`` fit for logs and screens: a password becomes ``***`` (redis://u:***@h:6379/0)."""
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if not at:
        return url
    return f"{scheme}{sep}{creds.partition(':')[0]}:***@{host}"


class ClusterPlan(msgspec.Struct, frozen=True):
    """A node's cluster membership, checked. ``secret`` is never logged or printed."""

    redis: str
    node: str
    advertise_host: str
    advertise_port: int
    secret: str
    ttl: float
    # gost's SD HTTP plugin API: where it listens (None: off) and the bearer token it wants.
    sd_host: str | None = None
    sd_port: int = 0
    sd_token: str | None = None

    @property
    def advertise(self) -> str:
        """``host:port`` of this node's forward address (IPv6 in brackets)."""
        return join_host_port(self.advertise_host, self.advertise_port)

    def __repr__(self) -> str:
        return (
            f"ClusterPlan(redis={redis_label(self.redis)!r}, node={self.node!r}, "
            f"advertise={self.advertise!r}, secret=<redacted>, ttl={self.ttl}, "
            f"sd={self.sd_host!r}:{self.sd_port}, sd_token={'<redacted>' if self.sd_token else None})"
        )


def _required(value: str | None, key: str, fix: str, file: str | None) -> str:
    if not value:
        raise ConfigError(
            f"{key} is required when burrow.cluster.redis is set", fix=fix, key=key, file=file
        )
    return value


def _secret(config: Config, file: str | None) -> str:
    c = config.burrow.cluster
    secret = read_secret(
        c.secret,
        c.secret_file,
        key="burrow.cluster.secret",
        what="cluster secret",
        min_length=MIN_SECRET,
        file=file,
    )
    return _required(
        secret, "burrow.cluster.secret", "set secret (or secret_file), the same on every node", file
    )


def plan_cluster(config: Config, file: str | None) -> ClusterPlan | None:
    """The cluster settings of ``config`` (None: no cluster); ConfigError naming key and fix."""
    c = config.burrow.cluster
    if c.redis is None:
        for key in ("node", "advertise", "secret", "secret_file", "sd_listen", "sd_token"):
            if getattr(c, key) is not None:
                raise ConfigError(
                    f"burrow.cluster.{key} is set but burrow.cluster.redis is not",
                    fix='set redis = "redis://host:6379/0" to join a cluster, or remove the key',
                    key=f"burrow.cluster.{key}",
                    file=file,
                )
        return None
    if not c.redis.startswith(REDIS_SCHEMES):
        raise ConfigError(
            f"redis URL {c.redis!r} has no redis://, rediss:// or unix:// scheme",
            fix='write e.g. redis = "redis://127.0.0.1:6379/0"',
            key="burrow.cluster.redis",
            file=file,
        )
    node = _required(c.node, "burrow.cluster.node", 'name this node, e.g. node = "edge-1"', file)
    if not _NODE_NAME.fullmatch(node):
        raise ConfigError(
            f"node name {node!r} must be 1-63 letters, digits, '.', '_' or '-'",
            fix='use a plain name, e.g. node = "edge-1"',
            key="burrow.cluster.node",
            file=file,
        )
    advertise = _required(
        c.advertise,
        "burrow.cluster.advertise",
        'set the relay address the other nodes reach, e.g. advertise = "10.0.0.5:8443"',
        file,
    )
    try:
        host, port = parse_host_port(advertise)
    except HostPortError as exc:
        raise ConfigError(
            f"advertise address {advertise!r}: {exc}",
            fix='write host:port, e.g. advertise = "10.0.0.5:8443"',
            key="burrow.cluster.advertise",
            file=file,
        ) from exc
    # Port 0 is "the port this node's relay listener on that host bound" (resolved at start,
    # docs/cluster.md): for tests and ephemeral setups; a real node names its fixed port.
    if not host or host in ("0.0.0.0", "::"):
        raise ConfigError(
            f"advertise address {advertise!r} is not one the other nodes can dial",
            fix="name this node's own address and its relay port, e.g. 10.0.0.5:8443",
            key="burrow.cluster.advertise",
            file=file,
        )
    sd_host, sd_port = _sd_listen(config, file)
    return ClusterPlan(
        c.redis, node, host, port, _secret(config, file), c.ttl,
        sd_host=sd_host, sd_port=sd_port, sd_token=c.sd_token,
    )  # fmt: skip


def _sd_listen(config: Config, file: str | None) -> tuple[str | None, int]:
    c = config.burrow.cluster
    if c.sd_listen is None:
        if c.sd_token is not None:
            raise ConfigError(
                "sd_token is set but sd_listen is not",
                fix='set sd_listen = "127.0.0.1:9100" to serve the SD API, or remove sd_token',
                key="burrow.cluster.sd_token",
                file=file,
            )
        return None, 0
    try:
        host, port = parse_host_port(c.sd_listen)
    except HostPortError as exc:
        raise ConfigError(
            f"sd_listen address {c.sd_listen!r}: {exc}",
            fix='write host:port, e.g. sd_listen = "10.0.0.5:9100"',
            key="burrow.cluster.sd_listen",
            file=file,
        ) from exc
    loopback = host in ("127.0.0.1", "::1", "localhost") or host.startswith("127.")
    if not loopback and not c.sd_token:
        # Anyone reaching an open SD API could register a connector and pull traffic to it.
        raise ConfigError(
            f"sd_listen {c.sd_listen!r} is not loopback and has no sd_token",
            fix="set sd_token (the token of gost's sds plugin) or listen on 127.0.0.1",
            key="burrow.cluster.sd_token",
            file=file,
        )
    read_secret(
        c.sd_token, None, key="burrow.cluster.sd_token", what="sd_token", min_length=MIN_SECRET,
        file=file,
    )  # fmt: skip
    return host, port
