"""TunnelPool.find_local: the connector-ID index must follow add / close / remove exactly."""

from __future__ import annotations

import uuid

from burrow.common.ids import TunnelId
from burrow.net.mux import MuxConnection
from burrow.proto.smux import SmuxConfig, SmuxSession
from burrow.server.pool import LocalConnector, TunnelPool


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
