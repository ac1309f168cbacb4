"""HA failover (issue 11, item 5; docs/failover.md): two clients on one tunnel, one signalled.

Two 50 req/s loops (entry point and visitor, a new connection per request) run while client-a
gets SIGTERM, SIGSTOP or SIGKILL; both dialects. Scenario and figures: failover_scenario.py,
tests/bench/failover.py prints them for BENCHMARKS.md.
"""

from __future__ import annotations

import pytest
from e2e.failover_scenario import CASES, CaseResult, run_case
from e2e.harness import Launcher

pytestmark = pytest.mark.e2e

DIALECTS = ["relay", "tunnel"]
MAX_WAIT = 3.0  # no request may wait longer than this while a client is frozen
SUSPECT_WITHIN = 2.0  # s after SIGSTOP by which no new request is sent to the frozen client
BEFORE, AFTER = 1.0, 2.5  # seconds of load before and after the signal
# Every case x dialect on a one-worker server; SIGSTOP also with the two clients on different
# workers of a two-worker server, where a stalled visitor is handed to the other worker
# mid-stream (one dialect: connector choice is all the dialect changes there).
GRID = [(case, 1, d) for case in CASES for d in DIALECTS] + [("sigstop", 2, "relay")]


def _explain(r: CaseResult) -> str:
    lines = [
        f"{r.case}/{r.dialect}: {len(r.failed)} failed of {len(r.samples)}, worst {r.worst:.3f}s"
    ]
    for s in r.failed[:10]:
        lines.append(f"  t={s.start - r.signalled_at:+.3f}s {s.latency:.3f}s {s.error}")
    return "\n".join(lines)


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("case", "workers", "dialect"), GRID)
def test_failover(burrow: Launcher, dialect: str, case: str, workers: int) -> None:
    """SIGTERM and SIGSTOP cost no request; SIGKILL only those in flight; none served twice."""
    r = run_case(burrow, dialect, case, workers=workers, before=BEFORE, after=AFTER)
    # Two loops of 50 req/s really ran (a little slack for a loaded machine).
    assert len(r.samples) >= 2 * 50 * (BEFORE + AFTER) * 0.8, _explain(r)
    if case == "sigkill":
        # Only what was in flight on client-a when it died may fail: at 50 req/s a request
        # takes a few ms, so at most one per loop, and nothing that started after the kill.
        assert len(r.failed) <= 2, _explain(r)
        assert all(s.start < r.signalled_at for s in r.failed), _explain(r)
    else:
        assert not r.failed, _explain(r)
    if case == "sigstop":
        assert r.worst < MAX_WAIT, _explain(r)
        # New requests stop going to the frozen client: once it is suspect none pays the
        # stall (a moved request takes the 1 s ack timeout at least).
        late = [s for s in r.samples if s.start > r.signalled_at + SUSPECT_WITHIN]
        assert late and max(s.latency for s in late) < 0.9, _explain(r)
        assert "connector.suspect" in r.server_log, r.server_log
    # A draining client forwards no new stream, and a frozen one that resumes must not deliver
    # what the server replayed elsewhere: only a request that had reached client-a's target
    # when it froze or died, with no byte back yet, is replayed and so served twice (at most
    # one per loop; docs/failover.md, at-least-once).
    assert r.duplicates <= (0 if case == "sigterm" else 2), _explain(r)
