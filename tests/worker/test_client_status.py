"""Tunnel-client status lines: failure streaks (how loudly), reasons (in words), retry delays."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket

import pytest
from worker.test_client import Records, client_plan, records, run, server_node, target

import burrow.client.tunnel as tunnel_mod
from burrow.client.status import (
    FailureStreak,
    bind_reason,
    dial_reason,
    down_reason,
    refused_reason,
)
from burrow.client.tunnel import TunnelClient
from burrow.client.unreachable import http_reply_for, target_reason
from burrow.proto.relay import Status

__all__ = ["records"]  # the fixture, imported for its side of pytest's lookup


def test_streak_warns_first_then_once_per_period() -> None:
    s = FailureStreak(repeat=60.0)
    assert s.failed(0.0) == logging.WARNING
    assert [s.failed(t) for t in (5.0, 10.0, 59.0)] == [logging.DEBUG] * 3
    assert s.failed(60.0) == logging.WARNING
    assert s.failed(61.0) == logging.DEBUG
    assert s.registered() == 6
    assert s.failed(62.0) == logging.WARNING  # up in between: the next failure is news again
    assert s.registered() == 1 and s.registered() == 0


def test_reasons_in_words() -> None:
    assert dial_reason(ConnectionRefusedError(111, "refused")).startswith("connection refused")
    assert dial_reason(TimeoutError()) == "connect timed out"
    assert dial_reason(socket.gaierror(-2, "Name or service not known")).startswith(
        "cannot resolve"
    )
    assert bind_reason(TimeoutError()).startswith("no BIND reply")
    assert bind_reason(ConnectionResetError()).startswith("server closed")
    assert refused_reason(Status.UNAUTHORIZED).startswith("auth refused")
    assert refused_reason(Status.SERVICE_UNAVAILABLE).startswith("server refused the tunnel")
    assert refused_reason(99) == "server refused the BIND"
    assert down_reason("connection lost") == "server closed the connection"
    assert down_reason("keepalive timeout: no frame from the peer").startswith("keepalive")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_server_warns_once_with_address_and_retry_delay(
    records: Records, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tunnel_mod, "BACKOFF_INITIAL", 0.02)
    monkeypatch.setattr(tunnel_mod, "BACKOFF_MAX", 0.02)
    port = closed_port()
    plan = client_plan(server_node(port, "relay"), [target("a", 1)])

    async def main() -> None:
        client = TunnelClient(plan)
        await client.start()
        try:
            async with asyncio.timeout(5.0):
                while sum(1 for n, _ in records.events() if n == "tunnel.dial_failed") < 4:
                    await asyncio.sleep(0.01)  # polling a condition, bounded by the timeout
        finally:
            client.close()

    run(main)
    fails = [r for r in records.records if r.getMessage() == "tunnel.dial_failed"]
    assert [r.levelno for r in fails[:4]] == [logging.WARNING] + [logging.DEBUG] * 3
    first = fails[0].burrow_fields  # type: ignore[attr-defined]
    assert first["server"] == f"127.0.0.1:{port}"
    assert first["reason"].startswith("connection refused")
    assert first["attempt"] == 1 and 0 < first["retry_in"] <= 0.1
    assert not any(r.getMessage() == "tunnel.up" for r in records.records)


def test_unreachable_target_reply_only_for_http() -> None:
    reply = http_reply_for(b"GET / HTTP/1.1\r\nHost: app.example.com\r\n\r\n")
    assert reply is not None and reply.startswith(b"HTTP/1.1 502 Bad Gateway\r\n")
    assert reply.endswith(
        b"The tunnel client for the host app.example.com could not reach its target.\n"
    )
    head = http_reply_for(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert head is not None and head.endswith(b"\r\n\r\n")
    partial = http_reply_for(b"POST /upload HTTP/1.1\r\nHost: a")  # head not complete yet
    assert partial is not None and b"for this host" in partial
    assert http_reply_for(b"\x16\x03\x01\x02\x00") is None  # TLS: close as before
    assert http_reply_for(b"SSH-2.0-x\r\n") is None
    assert http_reply_for(b"") is None


def test_target_reasons() -> None:
    assert target_reason(ConnectionRefusedError(111, "x")).startswith("target refused")
    assert target_reason(None) == "target did not answer in time"
    assert target_reason(OSError(errno.EHOSTUNREACH, "x")) == "no route to the target"
    assert target_reason(OSError(errno.EACCES, "x")) == "cannot connect to the target"
