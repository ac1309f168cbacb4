"""Connector selection: relay round robin and tunnel weighted random (docs/protocol.md, CONNECT)."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

import pytest

from burrow.routing.select import pick_connector, select_round_robin, select_weighted


@dataclass(frozen=True)
class Conn:
    name: str
    network: str = "tcp"
    weight: int = 0


def test_round_robin_order_and_counter() -> None:
    conns = [Conn("a"), Conn("u1", "udp"), Conn("b"), Conn("c"), Conn("u2", "udp")]
    counter, picked = 0, []
    for _ in range(7):
        choice, counter = select_round_robin(conns, "tcp", counter)
        assert choice is not None
        picked.append(choice.name)
    assert picked == ["a", "b", "c", "a", "b", "c", "a"]
    assert counter == 7
    choice, counter = select_round_robin(conns, "udp", counter)
    assert choice is not None and choice.name == "u2" and counter == 8  # 7 % 2 == 1


def test_round_robin_without_candidates_keeps_the_counter() -> None:
    assert select_round_robin([], "tcp", 5) == (None, 5)
    assert select_round_robin([Conn("u", "udp")], "tcp", 5) == (None, 5)


def test_weighted_distribution() -> None:
    rng = random.Random(1234)
    conns = [
        Conn("light", weight=1),
        Conn("heavy", weight=3),
        Conn("zero", weight=0),
        Conn("udp", "udp", weight=200),
    ]
    counts = Counter(
        choice.name
        for _ in range(10_000)
        if (choice := select_weighted(conns, "tcp", rng)) is not None
    )
    assert set(counts) == {"light", "heavy", "zero"}
    assert 0.55 < counts["heavy"] / 10_000 < 0.65  # 3 / 5
    assert 0.15 < counts["light"] / 10_000 < 0.25  # 1 / 5
    assert 0.15 < counts["zero"] / 10_000 < 0.25  # weight 0 counts as 1


def test_weighted_is_reproducible_with_a_seeded_rng() -> None:
    conns = [Conn(str(i), weight=i) for i in range(1, 20)]
    first = [select_weighted(conns, "tcp", random.Random(7)) for _ in range(3)]
    assert first[0] == first[1] == first[2]


def test_exclusive_weight() -> None:
    rng = random.Random(99)
    conns = [
        Conn("a", weight=254),
        Conn("x1", weight=255),
        Conn("b", weight=100),
        Conn("x2", weight=255),
        Conn("ux", "udp", weight=255),
        Conn("u", "udp", weight=1),
    ]
    picked = {c.name for _ in range(500) if (c := select_weighted(conns, "tcp", rng))}
    assert picked == {"x1", "x2"}
    # A 255 on the other network does not make anything on this one exclusive.
    mixed = [conns[0], conns[2], conns[4]]
    picked = {c.name for _ in range(500) if (c := select_weighted(mixed, "tcp", rng))}
    assert picked == {"a", "b"}
    assert {select_weighted(conns, "udp", rng) for _ in range(50)} == {conns[4]}


def test_weighted_checks_the_network_even_for_a_single_connector() -> None:
    rng = random.Random(0)
    assert select_weighted([Conn("u", "udp")], "tcp", rng) is None
    assert select_weighted([], "udp", rng) is None
    assert select_weighted([Conn("t")], "tcp", rng) == Conn("t")


def test_pick_connector_dispatch() -> None:
    conns = [Conn("a"), Conn("b", weight=255)]
    rng = random.Random(3)
    assert pick_connector(conns, "tcp", dialect="relay", counter=0, rng=rng) == (conns[0], 1)
    assert pick_connector(conns, "tcp", dialect="relay", counter=1, rng=rng) == (conns[1], 2)
    for counter in range(5):
        assert pick_connector(conns, "tcp", dialect="tunnel", counter=counter, rng=rng) == (
            conns[1],
            counter,
        )
    assert pick_connector(conns, "udp", dialect="tunnel", counter=4, rng=rng) == (None, 4)
    with pytest.raises(ValueError):
        pick_connector(conns, "tcp", dialect="socks", counter=0, rng=rng)  # type: ignore[arg-type]


def test_exclusive_weight_needs_an_authenticated_bind() -> None:
    from burrow.routing.select import effective_weight

    assert effective_weight(255, authenticated=True) == 255
    assert effective_weight(255, authenticated=False) == 1
    assert effective_weight(7, authenticated=False) == 7
    assert effective_weight(0, authenticated=False) == 0
