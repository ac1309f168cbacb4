"""StatsBook: sums over worker processes, a dead process's last report kept (monotonic)."""

from __future__ import annotations

from burrow.admin.api import summary, tunnels
from burrow.admin.book import StatsBook
from burrow.admin.prom import make_renderer
from burrow.ipc.messages import ConnectorStats, Stats, TunnelTraffic

T = "4d21094e-b74c-4916-86c1-d9fa36ea677b"


def stats(index: int, pid: int, b_in: int, b_out: int, live: bool = True) -> Stats:
    conns = (
        [
            ConnectorStats(
                "srv", "server", T, f"c{pid}", "tcp", "relay", "127.0.0.1:1", 1.0, b_in, b_out, 1, 2
            )
        ]
        if live
        else []
    )
    return Stats(index, pid, conns, [TunnelTraffic("srv", "server", T, b_in, b_out, 2)],
                 {"srv|entry_routed": 2})  # fmt: skip


def test_dead_process_counts_are_kept_and_new_ones_add() -> None:
    book = StatsBook(clients=["c"])
    book.spawned(0, 100, 0)
    book.spawned(1, 101, 0)
    book.report(100, stats(0, 100, 1000, 2000))
    book.report(101, stats(1, 101, 10, 20))
    snap = book.snapshot()
    assert snap.traffic[("srv", "server", T)] == [1010, 2020, 4]
    assert snap.events[("srv", "entry_routed")] == 4
    book.exited(100)  # SIGKILL: its last report is kept
    book.restarts += 1
    book.spawned(0, 102, 0)
    after = book.snapshot()
    assert after.traffic[("srv", "server", T)] == [1010, 2020, 4]
    assert len(after.connectors) == 1  # the dead process's connector is gone
    book.report(102, stats(0, 102, 5, 6))
    assert book.snapshot().traffic[("srv", "server", T)] == [1015, 2026, 6]
    text = make_renderer(book.snapshot)()[1].decode()
    assert (
        'burrow_tunnel_received_bytes_total{role="server",service="srv",tunnel="4d21094e"} 1015.0'
        in text
    )
    assert "burrow_worker_restarts_total 1.0" in text


def test_ready_needs_announce_and_registered_clients() -> None:
    book = StatsBook(clients=["c"])
    assert book.snapshot().not_ready == "not listening yet"
    book.announced = True
    assert book.snapshot().not_ready == "tunnel not registered: c"
    book.spawned(0, 100, 0)
    s = stats(0, 100, 0, 0)
    client = ConnectorStats("c", "client", T, "x", "tcp", "relay", "srv:1", 1.0, 0, 0, 0, 0)
    book.report(100, Stats(0, 100, [client], s.tunnels, {}))
    snap = book.snapshot()
    assert snap.ready and summary(snap)["tunnels_up"] == 1
    assert tunnels(snap)["tunnels"][0]["connectors"][0]["role"] == "client"
