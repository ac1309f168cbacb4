"""Replay the recorded gost client bytes against a real Burrow server, both dialects.

For every capture, connection 1 is the tunnel client's BIND: we send exactly the recorded request
and check the reply decodes to the same message as gost's (status, feature types, the endpoint
name, the connector ID length; the connector ID itself is random). Later connections are visitor
CONNECTs: same status as gost gave, and for the accepted ones the stream Burrow opens on our
scripted tunnel carries the same per-stream header destination gost sent.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.vectors import streams

from burrow.proto.need import NEED_DATA
from burrow.proto.relay import parse_request, parse_response
from burrow.proto.relay_features import AddrFeature
from burrow.proto.smux import PSH, SYN, FrameReader
from burrow.proto.stream_header import parse_stream_header

TID = "4d21094e-b74c-4916-86c1-d9fa36ea677b"
DEADLINE = 5.0


def server_yaml(dialect: str) -> str:
    ep_key = "entryPoint" if dialect == "relay" else "entrypoint"
    return f"""
services:
- name: service-0
  addr: 127.0.0.1:0
  handler:
    type: {dialect}
    metadata:
      {ep_key}: "127.0.0.1:0"
      ingress: ingress-0
  listener:
    type: tcp
ingresses:
- name: ingress-0
  rules:
  - hostname: "example.com"
    endpoint: {TID}
  - hostname: "private.example.com"
    endpoint: ${TID}
"""


@pytest.fixture
def server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[str, dict[str, int]]]:
    dialect = request.param
    cfg = tmp_path / "server.yaml"
    cfg.write_text(server_yaml(dialect))
    errf = open(tmp_path / "stderr.log", "w")  # noqa: SIM115 - closed after the process
    proc = subprocess.Popen(
        [sys.executable, "-m", "burrow.supervisor", "-C", str(cfg), "--workers", "1"],
        stdout=subprocess.PIPE,
        stderr=errf,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        line = ""
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if line.startswith("READY") or not line:
                break
        assert line.startswith("READY"), (tmp_path / "stderr.log").read_text()
        ports = {
            m.group(1): int(m.group(2)) for m in re.finditer(r"/(\w+)=127\.0\.0\.1:(\d+)", line)
        }
        yield dialect, ports
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        errf.close()
        if proc.stdout is not None:
            proc.stdout.close()


def recv_response(sock: socket.socket) -> tuple[object, bytes]:
    buf = b""
    sock.settimeout(DEADLINE)
    while True:
        parsed = parse_response(buf)
        if parsed is not None:
            return parsed[0], buf[parsed[1] :]
        chunk = sock.recv(65536)
        assert chunk, f"server closed before a full response ({buf.hex()})"
        buf += chunk


def stream_headers(data: bytes, version: int) -> list[tuple[int, object]]:
    """(sid, header) for every stream opened in an s2c smux byte stream."""
    reader = FrameReader(version)
    reader.receive_data(data)
    acc: dict[int, bytes] = {}
    out: list[tuple[int, object]] = []
    while True:
        fr = reader.next_frame()
        if fr is NEED_DATA:
            return out
        if fr.cmd == SYN:
            acc[fr.sid] = b""
        elif fr.cmd == PSH and fr.sid in acc:
            acc[fr.sid] += bytes(fr.data)
            parsed = parse_stream_header(acc[fr.sid])
            if parsed is not None:
                out.append((fr.sid, parsed[0]))
                del acc[fr.sid]


def shape(resp: object) -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    for f in resp.features:  # type: ignore[attr-defined]
        if isinstance(f, AddrFeature):
            out.append(("addr", f.addr.hostport()))
        else:
            out.append((type(f).__name__, getattr(f, "length", None)))
    return out


class TunnelSide:
    """Our scripted tunnel client: reads what the server writes after the BIND reply."""

    def __init__(self, sock: socket.socket, rest: bytes, version: int) -> None:
        self.sock = sock
        self.buf = rest
        self.version = version

    def wait_headers(self, count: int) -> list[object]:
        deadline = time.monotonic() + DEADLINE
        while True:
            found = stream_headers(self.buf, self.version)
            if len(found) >= count:
                return [h for _, h in found]
            assert time.monotonic() < deadline, f"only {len(found)} stream headers arrived"
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                continue
            assert chunk, "server closed the tunnel connection"
            self.buf += chunk


CASES = [(dialect, name) for dialect in ("relay", "tunnel") for name in ("a", "b", "c", "d")]


@pytest.mark.parametrize(
    ("server", "name"), CASES, indirect=["server"], ids=[f"{d}-{n}" for d, n in CASES]
)
def test_replay(server: tuple[str, dict[str, int]], name: str, vectors_dir: Path) -> None:
    dialect, ports = server
    folder = "relay-rc10" if dialect == "relay" else "tunnel-v3.2.6"
    version = 1 if dialect == "relay" else 2
    rec = streams(vectors_dir / folder / f"{name}.jsonl")
    conns = sorted({c for c, _ in rec})
    tunnels: list[TunnelSide] = []
    visitors: list[tuple[socket.socket, int]] = []
    expected_headers: list[object] = []
    for conn in conns:
        c2s, s2c = rec.get((conn, "c2s"), b""), rec.get((conn, "s2c"), b"")
        req = parse_request(c2s)
        gost = parse_response(s2c)
        assert req is not None and gost is not None, f"{name} conn {conn}: no relay messages"
        sock = socket.create_connection(("127.0.0.1", ports["relay"]), timeout=DEADLINE)
        sock.sendall(c2s[: req[1]])
        ours, rest = recv_response(sock)
        assert ours.status == gost[0].status, f"{name} conn {conn}"  # type: ignore[attr-defined]
        if req[0].command == 2:  # BIND: same features; the connector ID is random
            assert shape(ours) == shape(gost[0])
            tunnels.append(TunnelSide(sock, rest, version))
            expected_headers += [h for _, h in stream_headers(s2c[gost[1] :], version)]
        else:
            visitors.append((sock, conn))
    # Visitors that gost let through got a stream; ours must carry the same destination.
    visitor_headers = [h for h in expected_headers if h.dst is not None] if name != "a" else []
    assert visitor_headers or name == "a", "the capture has no accepted visitor"
    if name == "a":
        # Public entry point: an HTTP request with Host example.com, as curl sent in the capture.
        web = socket.create_connection(("127.0.0.1", ports["entrypoint"]), timeout=DEADLINE)
        web.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: example.com\r\n\r\n")
        visitors.append((web, 0))
        visitor_headers = expected_headers[:1]
    if visitor_headers:
        got = tunnels[0].wait_headers(len(visitor_headers))
        assert [h.dst.host for h in got] == [h.dst.host for h in visitor_headers]
        assert [h.dst.port for h in got] == [h.dst.port for h in visitor_headers]
    for sock, _ in visitors:
        sock.close()
    for t in tunnels:
        t.sock.close()
