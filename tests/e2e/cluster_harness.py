"""Three Burrow nodes on 127.0.0.2, 127.0.0.3 and 127.0.0.4 sharing one real Redis.

Every node is a relay (or tunnel) server with an entry point and an admin endpoint on its own
address, port 0 everywhere; ``advertise`` is ``<host>:0``, which a node resolves to its bound
relay port (docs/cluster.md). The fixtures are module-scoped: a module starts its nodes once
(``cluster.start_all(rules=...)``) and its tests share them.

    cluster.start_all(rules=[("a.example", TUNNEL_A)])   # nodes a, b, c; 2 workers each
    cluster.nodes["a"].relay                              # Listener of node a's relay port
    cluster.wait_tunnel("b", TUNNEL_A, on="a")            # b's admin API says A's tunnel is on a
"""

from __future__ import annotations

import http.client
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from e2e.harness import BurrowProcess, Launcher, Listener, server_config, wait_for
from e2e.redis_server import RedisServer

HOSTS = {"a": "127.0.0.2", "b": "127.0.0.3", "c": "127.0.0.4"}
# Long enough for a test's cluster secret check (>= 16 chars); never a real deployment's.
SECRET = "test-cluster-secret-0123456789abcdef"
# The SD API's bearer token on nodes started with sd=True (gost's ``plugin.token``).
SD_TOKEN = "test-sd-token-0123456789abcdef"
# Short renew period so the staleness tests (2 x TTL) stay fast.
TTL = 2.0
UP_TIMEOUT = 10.0


@dataclass
class ClusterNode:
    """One running node: its name, address and process."""

    name: str
    host: str
    proc: BurrowProcess

    @property
    def relay(self) -> Listener:
        """The relay (tunnel server) port: tunnel clients and visitors connect here."""
        return self.proc.listener("relay")

    @property
    def entry(self) -> Listener:
        """The entry point (HTTP by Host, TLS by SNI)."""
        return self.proc.listener("entrypoint")

    @property
    def admin(self) -> str:
        """The admin endpoint's host:port (from its admin.listening line)."""
        line = self.proc.wait_log(r"admin\.listening address=\S+", timeout=UP_TIMEOUT)
        m = re.search(r"address=(\S+)", line)
        assert m is not None
        return m.group(1)

    @property
    def sd(self) -> str:
        """host:port of the node's SD HTTP plugin API (started with sd=True)."""
        line = self.proc.wait_log(r"cluster\.sd_listening address=\S+", timeout=UP_TIMEOUT)
        m = re.search(r"address=(\S+)", line)
        assert m is not None
        return m.group(1)

    def sd_call(
        self,
        method: str,
        body: dict[str, str] | None = None,
        *,
        query: str = "",
        token: str | None = SD_TOKEN,
    ) -> tuple[int, Any]:
        """One SD API request as gost's HTTP plugin sends it: (status, decoded JSON)."""
        host, _, port = self.sd.rpartition(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=5.0)
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        try:
            conn.request(method, "/" + (f"?{query}" if query else ""),
                         body=json.dumps(body).encode() if body is not None else None,
                         headers=headers)  # fmt: skip
            resp = conn.getresponse()
            return resp.status, json.loads(resp.read() or b"null")
        finally:
            conn.close()

    def api(self, path: str) -> Any:
        """GET ``path`` from the admin endpoint (no token), decoded JSON; raises unless 200."""
        host, _, port = self.admin.rpartition(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=5.0)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            body = resp.read()
        finally:
            conn.close()
        if resp.status != 200:
            raise RuntimeError(f"{self.name} {path}: HTTP {resp.status} {body[:200]!r}")
        return json.loads(body)

    def cluster(self) -> dict[str, Any]:
        """This node's ``/api/cluster`` view: redis state, nodes, where each tunnel lives."""
        data: dict[str, Any] = self.api("/api/cluster")
        return data

    def tunnel_nodes(self, tunnel_id: str) -> set[str]:
        """Names of the nodes this node believes hold a connector of ``tunnel_id``."""
        rows = self.cluster()["tunnels"].get(tunnel_id, [])
        return {row["node"] for row in rows}


def node_config(
    name: str,
    host: str,
    redis_url: str,
    *,
    rules: list[tuple[str, str]],
    dialect: str = "relay",
    secret: str = SECRET,
    ttl: float = TTL,
    cluster: dict[str, Any] | None = None,
    burrow: dict[str, Any] | None = None,
    sd: bool = False,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A node's gost YAML: relay server + entry point on ``host``, admin, [burrow.cluster].

    ``sd``: also serve gost's SD HTTP plugin API on ``host:0`` with token :data:`SD_TOKEN`.
    ``metadata``: more handler metadata (e.g. entry-point TLS certificates).
    """
    config = server_config(rules, dialect=dialect, metadata=metadata)
    svc = config["services"][0]
    svc["addr"] = f"{host}:0"
    md = svc["handler"]["metadata"]
    md["entryPoint" if dialect == "relay" else "entrypoint"] = f"{host}:0"
    config["burrow"] = {
        "admin": f"{host}:0",
        "cluster": {
            "redis": redis_url,
            "node": name,
            "advertise": f"{host}:0",
            "secret": secret,
            "ttl": ttl,
            **({"sd_listen": f"{host}:0", "sd_token": SD_TOKEN} if sd else {}),
            **(cluster or {}),
        },
        **(burrow or {}),
    }
    return config


class Cluster:
    """Starts and stops nodes of one cluster (one Redis, one secret)."""

    def __init__(self, launcher: Launcher, redis: RedisServer) -> None:
        self.launcher = launcher
        self.redis = redis
        self.nodes: dict[str, ClusterNode] = {}

    def start_node(
        self,
        name: str,
        *,
        rules: list[tuple[str, str]],
        host: str | None = None,
        dialect: str = "relay",
        workers: int = 2,
        wait: bool = True,
        **extra: Any,
    ) -> ClusterNode:
        """Start node ``name`` (host from HOSTS unless given); ``extra`` goes to node_config."""
        host = host or HOSTS[name]
        config = node_config(name, host, self.redis.url, rules=rules, dialect=dialect, **extra)
        proc = self.launcher.start(f"node-{name}", config, workers=workers, wait=wait)
        node = ClusterNode(name, host, proc)
        self.nodes[name] = node
        if wait:
            proc.wait_log(r"cluster\.joined", timeout=UP_TIMEOUT)
        return node

    def start_all(
        self, *, rules: list[tuple[str, str]], dialect: str = "relay", **extra: Any
    ) -> dict[str, ClusterNode]:
        """Nodes a, b and c (2 workers each), started together, each joined to Redis."""
        for name in HOSTS:
            self.start_node(name, rules=rules, dialect=dialect, wait=False, **extra)
        for node in self.nodes.values():
            node.proc.wait_ready()
            node.proc.wait_log(r"cluster\.joined", timeout=UP_TIMEOUT)
        return self.nodes

    def wait_tunnel(
        self, name: str, tunnel_id: str, *, on: str | None, timeout: float = UP_TIMEOUT
    ) -> None:
        """Wait until node ``name`` places ``tunnel_id`` on node ``on`` (None: on no node)."""
        node = self.nodes[name]

        def placed() -> bool | None:
            where = node.tunnel_nodes(tunnel_id)
            if on is None:
                return (not where) or None
            return (on in where) or None

        wait_for(f"{name} to see {tunnel_id[:8]} on {on}", placed, timeout)

    def stop(self, name: str) -> None:
        """Stop one node gracefully (SIGTERM) and forget it."""
        self.nodes.pop(name).proc.stop()

    def close(self) -> None:
        """Stop every node."""
        for node in list(self.nodes.values()):
            node.proc.stop()
        self.nodes.clear()


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    """A redis-server of this module (unix socket); stopped at the module's end."""
    server = RedisServer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def cluster(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    redis_server: RedisServer,
) -> Iterator[Cluster]:
    """An empty cluster (no node started yet) on the module's Redis; logs printed on failure."""
    tmp: Path = tmp_path_factory.mktemp("cluster")
    launcher = Launcher(tmp)
    c = Cluster(launcher, redis_server)
    failed_before = request.session.testsfailed
    try:
        yield c
    finally:
        launcher.stop_all()  # clients first, so no node drains a live tunnel
        c.nodes.clear()
        if request.session.testsfailed > failed_before and launcher.started:
            print("\n" + launcher.report())
