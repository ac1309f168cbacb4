"""UnnamedTunnels: which registering tunnel IDs get the "no ingress rule names it" warning."""

from __future__ import annotations

from burrow.common.ids import TunnelId
from burrow.routing import unnamed as u

PUBLIC = TunnelId.parse("4d21094e-b74c-4916-86c1-d9fa36ea677b")
SECRET = TunnelId.parse("aede1f6a-762b-45da-b937-b6632356555a")
OTHER = TunnelId.parse("ac74d9dd-3125-442a-a7c1-f9e49e05faca")
RULES = [(".example.com", PUBLIC.text), ("priv.local", "$" + SECRET.text), ("bad", "nope")]


def test_unnamed_reported_once_named_and_private_never() -> None:
    t = u.UnnamedTunnels(RULES)
    assert not t.check(PUBLIC) and not t.check(SECRET)  # a private ($) rule names it too
    assert t.check(OTHER)
    assert not t.check(OTHER)  # once
    assert not t.check(TunnelId(OTHER.uuid, 0x80, 9))  # flags and weight are not the ID


def test_quiet_when_another_connector_came_first() -> None:
    t = u.UnnamedTunnels(RULES)
    assert not t.check(OTHER, elsewhere=True)
    assert not t.check(OTHER)  # counted as reported: this worker stays quiet from now on


def test_no_rules_no_warning() -> None:
    assert not u.UnnamedTunnels([]).check(OTHER)


def test_a_reload_is_a_new_table() -> None:
    assert u.UnnamedTunnels(RULES).check(OTHER)  # still unnamed after a reload: once more
    added = u.UnnamedTunnels([*RULES, ("other.example", OTHER.text)])
    assert added.named(OTHER) and not added.check(OTHER)


def test_memory_is_bounded(monkeypatch) -> None:
    monkeypatch.setattr(u, "MAX_REPORTED", 3)
    t = u.UnnamedTunnels(RULES)
    ids = [TunnelId(bytes([i]) * 16) for i in range(1, 6)]
    assert [t.check(i) for i in ids] == [True, True, True, False, False]


def test_pending_is_false_exactly_where_check_cannot_report(monkeypatch) -> None:
    # The relay server skips counting connectors (every BIND) when pending() says False: it must
    # never say False where check() would still warn.
    monkeypatch.setattr(u, "MAX_REPORTED", 2)
    t = u.UnnamedTunnels(RULES)
    ids = [PUBLIC, SECRET, OTHER, OTHER, *(TunnelId(bytes([i]) * 16) for i in range(1, 4))]
    got = []
    for tid in ids:
        could = t.pending(tid)
        assert t.check(tid) == could  # check() reports exactly where pending() said it could
        got.append(could)
    # named, named, unnamed, already reported, unnamed, then MAX_REPORTED reached
    assert got == [False, False, True, False, True, False, False]
    assert not u.UnnamedTunnels([]).pending(OTHER)  # no rules
