"""/api/events: the bounded ring of recent warnings and errors, fed by the supervisor's log and
by the failure counters workers report."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from burrow.admin.api import AdminApi
from burrow.admin.book import StatsBook
from burrow.admin.events import MAX_EVENTS, MAX_VALUE_CHARS, EventRing, RingHandler
from burrow.common.logfmt import event
from burrow.ipc.messages import Stats


def test_ring_is_bounded_and_counts_what_it_dropped() -> None:
    ring = EventRing()
    for i in range(MAX_EVENTS + 50):
        ring.add("warning", "worker.exited", {"worker": i})
    view = ring.view()
    assert len(view["events"]) == MAX_EVENTS
    assert view["last"] == MAX_EVENTS + 50 and view["dropped"] == 50
    assert view["events"][0]["fields"] == {"worker": 50}
    assert [e["seq"] for e in ring.view(since=view["last"] - 2)["events"]] == [
        view["last"] - 1,
        view["last"],
    ]


def test_ring_clips_what_it_keeps() -> None:
    ring = EventRing()
    ring.add("error", "x" * 1000, {f"k{i}": "v" * 1000 for i in range(40)})
    (entry,) = ring.view()["events"]
    assert len(entry["event"]) == MAX_VALUE_CHARS
    assert len(entry["fields"]) == 12
    assert all(len(v) <= MAX_VALUE_CHARS + 3 for v in entry["fields"].values())


@pytest.fixture
def logged() -> Iterator[EventRing]:
    ring = EventRing()
    handler = RingHandler(ring)
    logger = logging.getLogger("burrow")
    old = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield ring
    logger.removeHandler(handler)
    logger.setLevel(old)


def test_handler_keeps_warnings_and_errors_only(logged: EventRing) -> None:
    log = logging.getLogger("burrow.supervisor")
    event(log, logging.INFO, "worker.ready", worker=0)
    event(log, logging.WARNING, "worker.exited", worker=1, status="killed by SIGKILL")
    event(log, logging.ERROR, "reload.failed", level="x", action="keeping the running config")
    rows = logged.view()["events"]
    assert [(e["level"], e["event"]) for e in rows] == [
        ("warning", "worker.exited"),
        ("error", "reload.failed"),
    ]
    assert rows[0]["fields"] == {"worker": 1, "status": "killed by SIGKILL"}
    assert rows[1]["fields"]["level"] == "x"  # a field named like an entry key stays a field
    assert rows[0]["source"] == "supervisor"


def _stats(pid: int, **events: int) -> Stats:
    return Stats(index=1, pid=pid, connectors=[], tunnels=[],
                 events={f"svc|{k}": n for k, n in events.items()})  # fmt: skip


def test_worker_failure_counts_become_events_once_per_increase() -> None:
    book = StatsBook()
    book.spawned(1, 4242, 0)
    book.report(4242, _stats(4242, entry_routed=5, auth_failed=2))
    book.report(4242, _stats(4242, entry_routed=9, auth_failed=2))  # no new failure
    book.report(4242, _stats(4242, entry_routed=9, auth_failed=3, entry_503=1))
    rows = book.recent.view()["events"]
    got = [(e["source"], e["event"], e["fields"]["count"]) for e in rows]
    assert got == [("worker-1", "auth_failed", 2), ("worker-1", "auth_failed", 1),
                   ("worker-1", "entry_503", 1)]  # fmt: skip
    assert rows[0]["fields"]["service"] == "svc"


def test_api_serves_the_ring_with_since() -> None:
    ring = EventRing()
    api = AdminApi(None, lambda: ("text/plain", b""), events=ring)  # type: ignore[arg-type]
    ring.add("warning", "a")
    ring.add("error", "b")
    status, ctype, body = api.answer("GET", "/api/events?since=1", None)
    assert (status, ctype) == (200, "application/json")
    view = json.loads(body)
    assert [e["event"] for e in view["events"]] == ["b"] and view["last"] == 2
    assert len(json.loads(api.answer("GET", "/api/events?since=junk", None)[2])["events"]) == 2
