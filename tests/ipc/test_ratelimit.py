"""burrow.common.ratelimit: log limiter per reason, failure ban per source (clock passed in)."""

from __future__ import annotations

from burrow.common.ratelimit import OVERFLOW_KEY, FailureBan, LogLimiter


def test_log_limiter_lets_a_burst_through_then_counts() -> None:
    lim = LogLimiter(window=10, burst=3)
    assert [lim.admit("a", 0.0 + i / 100) for i in range(5)] == [
        (True, 0),
        (True, 0),
        (True, 0),
        (False, 0),
        (False, 0),
    ]
    assert lim.admit("b", 1.0) == (True, 0)  # per key
    assert lim.next_due() == 10.0
    # The next window's first event carries the previous window's count.
    assert lim.admit("a", 10.5) == (True, 2)
    assert lim.admit("a", 10.6) == (True, 0)


def test_log_limiter_due_reports_and_resets_quiet_keys() -> None:
    lim = LogLimiter(window=10, burst=1)
    lim.admit("a", 0.0)
    lim.admit("a", 0.1)
    lim.admit("b", 0.2)
    assert lim.due(5.0) == []
    assert lim.due(10.2) == [("a", 1)]
    assert lim.next_due() is None
    assert lim.admit("a", 10.3) == (True, 0)


def test_log_limiter_key_table_is_bounded() -> None:
    lim = LogLimiter(window=10, burst=1, max_keys=4)
    for i in range(100):
        lim.admit(f"k{i}", 0.0)
    assert len(lim._keys) <= 5
    assert OVERFLOW_KEY in lim._keys


def test_failure_ban_after_budget_in_a_minute() -> None:
    ban = FailureBan(budget=3, ban=60.0)
    assert not ban.failed("a", 0.0)
    assert not ban.failed("a", 1.0)
    assert not ban.banned("a", 1.0)
    assert ban.failed("a", 2.0)  # the third failure starts the ban
    assert ban.banned("a", 2.0)
    assert not ban.banned("b", 2.0)
    assert ban.banned("a", 61.9)
    assert not ban.banned("a", 62.1)


def test_failure_ban_counts_per_period() -> None:
    ban = FailureBan(budget=3, ban=60.0, period=60.0)
    ban.failed("a", 0.0)
    ban.failed("a", 1.0)
    assert not ban.failed("a", 61.0)  # a new minute: the count starts over
    assert not ban.banned("a", 61.0)


def test_failure_ban_table_is_bounded() -> None:
    ban = FailureBan(budget=1, ban=600.0, max_sources=100)
    assert ban.failed("attacker", 0.0)
    for i in range(10_000):
        ban.failed(f"10.0.{i // 256}.{i % 256}", 1.0)
    assert len(ban) <= 100
    assert ban.enabled


def test_failure_ban_off_with_zero_budget() -> None:
    ban = FailureBan(budget=0, ban=60.0)
    assert not ban.failed("a", 0.0)
    assert len(ban) == 0
