"""ConnectorHealth and RetryBudget (burrow.routing.health; docs/failover.md) as plain data."""

from __future__ import annotations

import pytest

from burrow.routing.health import (
    ACK_SAMPLE_WINDOW,
    SAMPLES,
    Action,
    ConnectorHealth,
    FailoverConfig,
    RetryBudget,
    prefer_healthy,
)

CFG = FailoverConfig(ack_timeout=1.0, silent_timeout=5.0, replay=65536)


def acking() -> ConnectorHealth:
    h = ConnectorHealth()
    for _ in range(3):
        h.replied(nop_seen=True, latency=0.002)
    return h


def test_a_new_connector_is_not_known_to_ack() -> None:
    h = ConnectorHealth()
    assert not h.acks
    assert h.bound(CFG) == CFG.silent_timeout


def test_acks_need_two_samples_and_a_majority() -> None:
    h = ConnectorHealth()
    h.replied(nop_seen=True, latency=0.001)
    assert not h.acks  # one sample could be a gost keepalive NOP landing by chance
    h.replied(nop_seen=True, latency=0.001)
    assert h.acks
    assert h.bound(CFG) == CFG.ack_timeout
    h.replied(nop_seen=False, latency=0.001)
    assert h.acks  # 2 of 3
    h.replied(nop_seen=False, latency=0.001)
    assert not h.acks  # 2 of 4 is no majority


def test_a_gost_client_with_a_lucky_keepalive_stays_non_acking() -> None:
    h = ConnectorHealth()
    for i in range(50):
        h.replied(nop_seen=(i % 10 == 0), latency=0.003)
        assert not h.acks or i == 0


def test_only_the_recent_samples_count() -> None:
    h = acking()
    for _ in range(SAMPLES):
        h.replied(nop_seen=False, latency=0.001)
    assert not h.acks


def test_slow_replies_say_nothing_about_acks() -> None:
    h = ConnectorHealth()
    for _ in range(5):
        h.replied(nop_seen=True, latency=ACK_SAMPLE_WINDOW + 0.1)
    assert not h.acks
    h = acking()
    for _ in range(5):
        h.replied(nop_seen=False, latency=ACK_SAMPLE_WINDOW + 0.1)
    assert h.acks


@pytest.mark.parametrize(
    ("acks", "silent", "replayable", "expected"),
    [
        (True, 0.5, True, Action.WAIT),
        (True, 1.0, True, Action.RETRY),
        (True, 1.0, False, Action.SUSPECT),  # too much sent to replay: only stop choosing it
        (False, 1.0, True, Action.WAIT),  # a gost client gets the longer bound
        (False, 5.0, True, Action.SUSPECT),  # ... and its streams are never moved
        (False, 60.0, True, Action.SUSPECT),
    ],
)
def test_verdict(acks: bool, silent: float, replayable: bool, expected: Action) -> None:
    h = acking() if acks else ConnectorHealth()
    assert h.verdict(CFG, silent, replayable) is expected


def test_zero_turns_the_rules_off() -> None:
    off = FailoverConfig(ack_timeout=0.0, silent_timeout=0.0, replay=65536)
    assert not off.enabled
    assert acking().verdict(off, 100.0, True) is Action.WAIT
    assert ConnectorHealth().verdict(off, 100.0, True) is Action.WAIT
    no_replay = FailoverConfig(ack_timeout=1.0, silent_timeout=5.0, replay=0)
    assert acking().verdict(no_replay, 2.0, True) is Action.SUSPECT


def test_suspect_until_any_frame_arrives() -> None:
    h = acking()
    assert not h.is_suspect(7)
    assert h.mark_suspect(7)
    assert not h.mark_suspect(7)  # already suspect: counted once
    assert h.suspect_count == 1
    assert h.is_suspect(7)
    assert h.is_suspect(7)
    assert not h.is_suspect(8)  # a read happened since: healthy again
    assert not h.is_suspect(8)
    assert h.mark_suspect(8)
    assert h.suspect_count == 2


def test_retry_budget() -> None:
    b = RetryBudget(3)
    assert b.left
    b.use("a")
    b.use("a")  # the same connector twice is one attempt
    b.use("b")
    assert b.left
    b.use("c")
    assert not b.left
    assert b.tried == ("a", "b", "c")
    assert RetryBudget(3).tried is RetryBudget(3).tried  # unused budgets share the empty tuple


def test_prefer_healthy_never_strands_a_tunnel() -> None:
    assert prefer_healthy(["a", "b", "c"], [False, True, False]) == ["a", "c"]
    assert prefer_healthy(["a", "b"], [True, True]) == ["a", "b"]
    assert prefer_healthy([], []) == []
