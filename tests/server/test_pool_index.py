"""TunnelPool.find_local: the connector-ID index must follow add / close / remove exactly."""

from __future__ import annotations

import asyncio
import logging
import uuid

import uvloop

from burrow.common.ids import TunnelId
from burrow.common.ratelimit import LogLimiter
from burrow.net.mux import MuxConnection
from burrow.proto.smux import SmuxConfig, SmuxSession
from burrow.server.pool import LocalConnector, TunnelPool, UpLog


def connector(tid: TunnelId) -> LocalConnector:
    mux = MuxConnection(SmuxSession(SmuxConfig(), client=True, now=0.0))
    cid = TunnelId(uuid.uuid4().bytes)
    return LocalConnector(tid, cid, "tcp", 0, "relay", "127.0.0.1:1", mux)


def test_find_local_follows_add_close_and_remove() -> None:
    pool = TunnelPool(0, None)
    tids = [TunnelId(uuid.uuid4().bytes) for _ in range(50)]
    conns = [connector(t) for t in tids for _ in range(2)]  # two connectors per tunnel
    for c in conns:
        pool.add(c)
    for c in conns:
        assert pool.find_local(c.connector_id.text) is c
    assert pool.find_local(str(uuid.uuid4())) is None
    gone, closed, kept = conns[0], conns[1], conns[2]
    pool.remove(gone, "test")
    assert pool.find_local(gone.connector_id.text) is None
    closed.mux.closed = True  # closed but not yet removed: not usable, so not found
    assert pool.find_local(closed.connector_id.text) is None
    assert pool.find_local(kept.connector_id.text) is kept
    pool.remove(gone, "test")  # a second remove is a no-op
    pool.remove(closed, "test")
    assert tids[0] not in pool.local and pool.local[tids[1]] == [conns[2], conns[3]]


def test_tunnel_id_text_is_the_canonical_uuid_form() -> None:
    for _ in range(3000):  # more IDs than the text cache holds
        raw = uuid.uuid4().bytes
        tid = TunnelId(raw)
        assert tid.text == str(uuid.UUID(bytes=raw))
        assert TunnelId.parse(tid.text) == tid
    assert TunnelId(bytes(range(16))).text == "00010203-0405-0607-0809-0a0b0c0d0e0f"


def test_a_burst_of_binds_logs_a_bounded_number_of_tunnel_up_lines_and_a_sum() -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    def names() -> list[str]:
        return [r.getMessage() for r in records]

    async def main() -> None:
        pool = TunnelPool(0, None)
        pool.up_log = UpLog(LogLimiter(window=0.2, burst=5))
        for _ in range(12):
            pool.add(connector(TunnelId(uuid.uuid4().bytes)))
        assert names() == ["tunnel.up"] * 5  # the other 7 wait for the window's sum
        async with asyncio.timeout(5.0):
            while "tunnel.up_burst" not in names():
                await asyncio.sleep(0.02)  # polling a condition, bounded by the timeout
        burst = records[-1]
        assert burst.getMessage() == "tunnel.up_burst"
        assert burst.burrow_fields["count"] == 7  # type: ignore[attr-defined]
        pool.add(connector(TunnelId(uuid.uuid4().bytes)))  # a new window: logged one by one
        assert names()[-1] == "tunnel.up" and names().count("tunnel.up") == 6

    logger = logging.getLogger("burrow.pool")
    keep, level = Keep(), logger.level
    logger.addHandler(keep)
    logger.setLevel(logging.INFO)
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(main())
    finally:
        logger.removeHandler(keep)
        logger.setLevel(level)


def test_a_tunnel_with_one_connector_keeps_no_round_robin_counter() -> None:
    """Routing to thousands of single-connector tunnels stores nothing per tunnel (a counter
    with its key was ~0.2 KB per tunnel per worker); with two connectors the relay dialect
    still alternates, and the tunnel dialect (weighted random) keeps no counter either."""
    pool = TunnelPool(0, None)
    singles = [connector(TunnelId(uuid.uuid4().bytes)) for _ in range(100)]
    for c in singles:
        pool.add(c)
    for c in singles:
        for dialect in ("relay", "tunnel"):
            assert pool.pick(TunnelId(c.tunnel_id.uuid), "tcp", dialect) is c
        assert pool.pick(c.tunnel_id, "udp", "relay") is None  # candidates are by network
    assert pool._counters == {}
    tid = TunnelId(uuid.uuid4().bytes)
    a, b = connector(tid), connector(tid)
    pool.add(a)
    pool.add(b)
    picks = [pool.pick(tid, "tcp", "relay") for _ in range(6)]
    assert picks == [a, b, a, b, a, b]
    assert {pool.pick(tid, "tcp", "tunnel") for _ in range(50)} == {a, b}
    assert list(pool._counters) == [(tid, "tcp")]
