"""A node's relay port takes members' forwards (cluster TLS + ForwardHeader) and no one else's.

The test process plays the forwarding member: it derives the cluster credential from the secret
exactly as a node does (burrow.net.cluster_tls), so these tests need only one node and no
mirrored entries. The cross-node tests are in test_cluster_forward.py.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import ssl
from collections.abc import Iterator

import pytest
from e2e.cluster_harness import SECRET, Cluster, ClusterNode
from e2e.conftest import TUNNEL_A, TUNNEL_B, TUNNEL_SVC
from e2e.harness import client_config, client_service, forward_node
from e2e.peers import HttpPeer, TcpPeer, read_http_head, read_http_response

from burrow.common.ids import TunnelId
from burrow.net.cluster_tls import cluster_context
from burrow.proto.addr import Address
from burrow.proto.forward import ACCEPTED, CLUSTER_NAME, REFUSED, ForwardHeader, encode_forward
from burrow.proto.relay import Cmd, RelayRequest, RelayResponse, Status, parse_request
from burrow.proto.relay_features import AddrFeature, TunnelFeature

IO_TIMEOUT = 5.0
SD_TOKEN = "sd-token-for-the-test"
GOST_HOST = "g.example"
VISITOR = "203.0.113.7:40000"


@pytest.fixture(scope="module")
def web() -> Iterator[HttpPeer]:
    peer = HttpPeer("web-a")
    yield peer
    peer.close()


@pytest.fixture(scope="module")
def node_a(cluster: Cluster, web: HttpPeer) -> ClusterNode:
    """Node a alone, with a tunnel client for TUNNEL_A on it (backend: web-a)."""
    node = cluster.start_node(
        "a",
        rules=[("a.example", TUNNEL_A), ("b.example", TUNNEL_B), (GOST_HOST, TUNNEL_SVC)],
        wait=False,
        cluster={"internal": "127.0.0.2:0", "sd_listen": "127.0.0.2:0", "sd_token": SD_TOKEN},
    )
    node.proc.wait_ready()  # Redis plays no part here: nothing is mirrored
    client = cluster.launcher.start(
        "client-a",
        client_config(
            node.relay.address,
            TUNNEL_A,
            [client_service("service-0", [forward_node("target-0", web.address)])],
        ),
    )
    client.wait_log(r"tunnel\.up", timeout=IO_TIMEOUT)
    return node


def _member(node: ClusterNode, secret: str = SECRET) -> ssl.SSLSocket:
    raw = socket.create_connection((node.relay.host, node.relay.port), timeout=IO_TIMEOUT)
    return cluster_context(secret, server=False).wrap_socket(raw, server_hostname=CLUSTER_NAME)


def _forward(tls: ssl.SSLSocket, tunnel: str, prefix: bytes) -> bytes:
    header = ForwardHeader(node="test", kind="entrypoint", tunnel=tunnel, network="tcp",
                           peer=VISITOR)  # fmt: skip
    tls.sendall(encode_forward(header, prefix))
    return tls.recv(1)


GET = b"GET /x HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n"


def test_member_forward_routes_to_the_local_tunnel(node_a: ClusterNode) -> None:
    for _ in range(4):  # both workers take some: one holds the tunnel, the other hands over
        with _member(node_a) as tls:
            assert _forward(tls, TUNNEL_A, GET) == ACCEPTED
            assert read_http_response(tls) == (200, b"web-a host=a.example")


def test_forward_for_a_tunnel_not_here_is_refused_not_sent_on(node_a: ClusterNode) -> None:
    with _member(node_a) as tls:
        assert _forward(tls, TUNNEL_B, GET) == REFUSED
        assert tls.recv(1) == b""
    node_a.proc.wait_log(r"forward\.refused .*reason=\"?no connector", timeout=IO_TIMEOUT)


def test_wrong_secret_is_refused(node_a: ClusterNode) -> None:
    """A certificate from another secret: the handshake (or the first read) fails."""
    with (
        pytest.raises((ssl.SSLError, ConnectionError)),
        _member(node_a, "not-the-cluster-secret-0123456789") as tls,
    ):
        assert _forward(tls, TUNNEL_A, GET) == b"", "a wrong secret got an answer"
        raise ConnectionError("closed without an answer")
    node_a.proc.wait_log(r"forward\.rejected .*not a cluster member", timeout=IO_TIMEOUT)


def test_tls_without_a_client_certificate_is_refused(node_a: ClusterNode) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection((node_a.relay.host, node_a.relay.port), timeout=IO_TIMEOUT)
    with (
        pytest.raises((ssl.SSLError, ConnectionError)),
        ctx.wrap_socket(raw, server_hostname=CLUSTER_NAME) as tls,
    ):
        tls.sendall(GET)
        assert tls.recv(1) == b"", "no client certificate got an answer"
        raise ConnectionError("closed without an answer")
    # The relay port still serves its tunnel: a member forward right after works.
    with _member(node_a) as tls:
        assert _forward(tls, TUNNEL_A, GET) == ACCEPTED
        assert read_http_response(tls)[0] == 200


# ---- the cluster-internal listener: forwards as gost nodes send them (plain TCP, replayed) ----


def _internal(node: ClusterNode) -> socket.socket:
    lst = node.proc.listener("internal")
    return socket.create_connection((lst.host, lst.port), timeout=IO_TIMEOUT)


def test_gost_http_forward_on_the_internal_listener(node_a: ClusterNode) -> None:
    head = b"GET /x HTTP/1.1\r\nGost-Forwarded-Node: gost-7\r\nHost: a.example\r\n\r\n"
    with _internal(node_a) as sock:
        sock.sendall(head.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
        assert read_http_response(sock) == (200, b"web-a host=a.example")


def test_gost_relay_connect_forward_on_the_internal_listener(node_a: ClusterNode) -> None:
    """gost replays the visitor's CONNECT; the reply and the stream come back on the same socket."""
    req = RelayRequest(
        Cmd.CONNECT,
        (TunnelFeature(TunnelId.parse(TUNNEL_A), 16), AddrFeature(Address.of("a.example", 80))),
    )
    with _internal(node_a) as sock:
        sock.sendall(req.encode() + GET)
        reply = RelayResponse(Status.OK).encode()
        got = b""
        while len(got) < len(reply):
            chunk = sock.recv(len(reply) - len(got))
            assert chunk, f"closed after {got!r}"
            got += chunk
        assert got == reply
        assert read_http_response(sock) == (200, b"web-a host=a.example")


def test_internal_listener_503_for_a_tunnel_not_here_and_no_bind(node_a: ClusterNode) -> None:
    """A tunnel not on this node is a 503; BIND is not taken there (tunnel clients use the relay port)."""
    with _internal(node_a) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: b.example\r\nConnection: close\r\n\r\n")
        assert read_http_response(sock)[0] == 503
    bind = RelayRequest(Cmd.BIND, (TunnelFeature(TunnelId.parse(TUNNEL_B), 16),))
    with _internal(node_a) as sock:
        sock.sendall(bind.encode())
        assert sock.recv(64) == RelayResponse(Status.FORBIDDEN).encode()


# ---- a gost node in a Burrow cluster: registered through the SD API, reached as gost does ----


class GostEntryPoint(TcpPeer):
    """What a gost node's entry point sees of a forward: the replayed first bytes, recorded.

    HTTP gets ``200 gost-node``; a relay CONNECT gets relay OK and then the echo of what follows.
    """

    def __init__(self) -> None:
        self.seen: list[bytes] = []
        super().__init__(self._serve)

    def _serve(self, conn: socket.socket) -> None:
        first = conn.recv(1, socket.MSG_PEEK)
        if first == b"\x01":
            buf = b""
            while (parsed := parse_request(buf)) is None:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                buf += chunk
            _, used = parsed
            self.seen.append(buf[:used])
            conn.sendall(RelayResponse(Status.OK).encode() + buf[used:])
            while chunk := conn.recv(4096):
                conn.sendall(chunk)
            return
        head = read_http_head(conn)
        self.seen.append(head)
        body = b"gost-node"
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\nConnection: close\r\n\r\n" + body)


def _sd(
    node: ClusterNode, method: str, body: dict[str, str] | None, query: str = ""
) -> tuple[int, object]:
    line = node.proc.wait_log(r"cluster\.sd_listening address=\S+", timeout=IO_TIMEOUT)
    m = re.search(r"address=(\S+)", line)
    assert m is not None
    host, _, port = m.group(1).rpartition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=IO_TIMEOUT)
    try:
        conn.request(method, "/sd" + query, body=json.dumps(body) if body else None,
                     headers={"Authorization": f"Bearer {SD_TOKEN}",
                              "Content-Type": "application/json"})  # fmt: skip
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"null")
    finally:
        conn.close()


def test_gost_sd_client_registers_and_burrow_forwards_like_gost(
    node_a: ClusterNode, cluster: Cluster
) -> None:
    """A gost node registers its connector at a's SD API (HTTP plugin calls); a, with no
    connector of that tunnel, forwards to the gost entry point: HTTP with Gost-Forwarded-Node,
    and a visitor's relay CONNECT replayed."""
    gost = GostEntryPoint()
    record = {"id": "5d2e0f43-3b0c-4c4e-9a37-0c8f3f0b6a11", "name": TUNNEL_SVC,
              "node": "gost-1", "network": "tcp", "address": gost.address}  # fmt: skip
    try:
        assert _sd(node_a, "POST", record) == (200, {"ok": True})
        status, got = _sd(node_a, "GET", None, f"?name={TUNNEL_SVC}")
        assert status == 200 and isinstance(got, dict)
        assert [s["node"] for s in got["services"]] == ["gost-1"]
        cluster.wait_tunnel("a", TUNNEL_SVC, on="gost-1")

        entry = (node_a.entry.host, node_a.entry.port)
        with socket.create_connection(entry, timeout=IO_TIMEOUT) as sock:
            sock.sendall(f"GET / HTTP/1.1\r\nHost: {GOST_HOST}\r\nGost-Forwarded-Node: forged"
                         "\r\nConnection: close\r\n\r\n".encode())  # fmt: skip
            assert read_http_response(sock) == (200, b"gost-node")
        head = gost.seen[-1]
        assert head.startswith(b"GET / HTTP/1.1\r\nGost-Forwarded-Node: a\r\n")
        assert b"forged" not in head and f"Host: {GOST_HOST}".encode() in head

        req = RelayRequest(Cmd.CONNECT, (TunnelFeature(TunnelId.parse(TUNNEL_SVC), 16),
                                         AddrFeature(Address.of(GOST_HOST, 22))))  # fmt: skip
        with socket.create_connection((node_a.relay.host, node_a.relay.port),
                                      timeout=IO_TIMEOUT) as sock:  # fmt: skip
            sock.sendall(req.encode() + b"ping")
            want = RelayResponse(Status.OK).encode() + b"ping"
            got_bytes = b""
            while len(got_bytes) < len(want):
                chunk = sock.recv(64)
                assert chunk, f"closed after {got_bytes!r}"
                got_bytes += chunk
            assert got_bytes == want
        assert gost.seen[-1] == req.encode()  # the CONNECT itself, as the visitor sent it

        # A gost node's forward arriving on the internal listener is never sent on, even to
        # the gost node that (per Redis) holds the tunnel: 503, and the gost entry point sees
        # nothing more.
        seen = len(gost.seen)
        with _internal(node_a) as sock:
            sock.sendall(f"GET / HTTP/1.1\r\nHost: {GOST_HOST}\r\nGost-Forwarded-Node: gost-1"
                         "\r\nConnection: close\r\n\r\n".encode())  # fmt: skip
            assert read_http_response(sock)[0] == 503
        assert len(gost.seen) == seen and gost.accepted == seen

        assert _sd(node_a, "DELETE", record) == (200, {"ok": True})
        cluster.wait_tunnel("a", TUNNEL_SVC, on=None)
    finally:
        gost.close()
