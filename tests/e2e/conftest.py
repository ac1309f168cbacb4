"""Fixtures for the end-to-end suite: launcher (logs on failure), peers, a CA."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from e2e.cluster_harness import cluster, redis_server  # noqa: F401 - fixtures
from e2e.harness import Launcher
from e2e.peers import (
    DnsPeer,
    EchoPeer,
    HttpPeer,
    RedisPeer,
    SshBannerPeer,
    UdpEchoPeer,
)

TUNNEL_A = "4d21094e-b74c-4916-86c1-d9fa36ea677b"
TUNNEL_B = "ac74d9dd-3125-442a-a7c1-f9e49e05faca"
TUNNEL_SVC = "aede1f6a-762b-45da-b937-b6632356555a"
TUNNEL_IPERF = "22f43305-42f7-4232-bbbc-aa6c042e3bc3"


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    """Remember each phase's report on the item so teardown knows whether the test failed."""
    rep = yield
    setattr(item, f"rep_{rep.when}", rep)
    return rep


@pytest.fixture
def burrow(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Launcher]:
    """Start burrow processes; all stopped at teardown, logs printed on failure."""
    launcher = Launcher(tmp_path)
    try:
        yield launcher
    finally:
        launcher.stop_all()
        failed = any(
            getattr(getattr(request.node, f"rep_{when}", None), "failed", False)
            for when in ("setup", "call")
        )
        if failed and launcher.started:
            print("\n" + launcher.report())


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    """A throwaway CA; TLS peers get certificates from it, clients trust it."""
    return trustme.CA()


@pytest.fixture
def echo_peer() -> Iterator[EchoPeer]:
    """TCP echo peer."""
    peer = EchoPeer()
    yield peer
    peer.close()


@pytest.fixture
def redis_peer() -> Iterator[RedisPeer]:
    """Redis-speaking peer."""
    peer = RedisPeer()
    yield peer
    peer.close()


@pytest.fixture
def ssh_peer() -> Iterator[SshBannerPeer]:
    """SSH-banner peer (server speaks first)."""
    peer = SshBannerPeer()
    yield peer
    peer.close()


@pytest.fixture
def web() -> Iterator[HttpPeer]:
    """The healthy target of the attack and routing tests: answers "healthy host=<Host>"."""
    peer = HttpPeer("healthy")
    yield peer
    peer.close()


@pytest.fixture
def http_peers() -> Iterator[dict[str, HttpPeer]]:
    """Three named HTTP peers: web-a, web-b, fallback."""
    peers = {name: HttpPeer(name) for name in ("web-a", "web-b", "fallback")}
    yield peers
    for peer in peers.values():
        peer.close()


@pytest.fixture
def udp_echo_peer() -> Iterator[UdpEchoPeer]:
    """UDP echo peer."""
    peer = UdpEchoPeer()
    yield peer
    peer.close()


@pytest.fixture
def dns_peer() -> Iterator[DnsPeer]:
    """Tiny DNS responder."""
    peer = DnsPeer()
    yield peer
    peer.close()
