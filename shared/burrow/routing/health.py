"""Connector health for failover (sans-IO): suspect or healthy, whether it acks, the retry budget.

Spec: docs/failover.md. The server opens a stream on a connector and then watches the session:

- A Burrow tunnel client acknowledges every new stream at once with a NOP (any smux peer ignores
  it) and sends a NOP every ``HEARTBEAT`` while a stream still waits for its target's first byte.
  A session that stays silent for ``ack_timeout`` while one of its streams waits means the client
  is frozen (SIGSTOP, a hung host): the connector turns *suspect* and the stream is retried on
  another connector while its first bytes are still replayable.
- A gost tunnel client sends no acks, and a slow target legitimately keeps its session silent.
  Such a connector is only marked suspect after ``silent_timeout`` and its streams are never
  retried (a retry could send a request to a second target while the first is still on it).

Whether a connector acks is learned from its streams: one whose NOP came between the SYN and the
first reply byte counts as acked. A gost keepalive NOP can land in that gap by chance, so the
verdict is a majority over the recent streams, not one sample.

A suspect connector is picked only when no healthy one is left, and turns healthy again on the
next frame it sends (the caller compares a receive counter, so nothing runs per frame).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Final, TypeVar

T = TypeVar("T")

# Client side: NOP interval while a stream waits for its target's first byte. The server's
# ack_timeout must be well above it (plus the round trip) or a busy client looks frozen.
HEARTBEAT: Final = 0.25
# Learning window: the last this many replied streams decide whether a connector acks.
SAMPLES: Final = 8
# A reply slower than this says nothing about acks: a gost keepalive NOP had time to come by.
ACK_SAMPLE_WINDOW: Final = 0.5


@dataclass(frozen=True, slots=True)
class FailoverConfig:
    """The server's failover knobs (``[burrow.limits]`` failover_*; 0 turns a rule off)."""

    ack_timeout: float = 1.0  # silence that makes an acking (Burrow) connector suspect
    silent_timeout: float = 5.0  # silence that makes a non-acking (gost) connector suspect
    replay: int = 65536  # visitor bytes kept for a retry; 0 = never retry
    attempts: int = 3  # connectors one request may try (gost tries the pool three times)

    @property
    def enabled(self) -> bool:
        return self.ack_timeout > 0 or self.silent_timeout > 0


class Action(Enum):
    """What the server does with a stream whose connector stayed silent."""

    WAIT = "wait"  # not silent long enough (or the rule is off): check again later
    SUSPECT = "suspect"  # mark the connector suspect; the stream keeps waiting on it
    RETRY = "retry"  # mark it suspect and move the stream to another connector


class ConnectorHealth:
    """Per-connector failover state: acks learned from replies, suspect flag with its mark."""

    __slots__ = ("_acked", "_mark", "_samples", "suspect_count")

    def __init__(self) -> None:
        self._samples: list[bool] = []  # True: that stream's reply was preceded by a NOP
        self._acked = False
        self._mark: int | None = None  # receive counter when marked suspect; None = healthy
        self.suspect_count = 0  # times this connector turned suspect (for logs and tests)

    @property
    def acks(self) -> bool:
        """Whether this connector acknowledges new streams (a Burrow client)."""
        return self._acked

    def replied(self, nop_seen: bool, latency: float) -> None:
        """A stream got its first byte back ``latency`` s after opening; ``nop_seen`` before it."""
        if latency > ACK_SAMPLE_WINDOW:
            return
        s = self._samples
        s.append(nop_seen)
        if len(s) > SAMPLES:
            del s[0]
        # Two samples at least, then a strict majority: one lucky keepalive is not enough.
        yes = sum(s)
        self._acked = len(s) >= 2 and 2 * yes > len(s)

    def bound(self, cfg: FailoverConfig) -> float:
        """How long this connector's session may stay silent while a stream waits (0 = no rule)."""
        return cfg.ack_timeout if self._acked else cfg.silent_timeout

    def verdict(self, cfg: FailoverConfig, silent_for: float, replayable: bool) -> Action:
        """A stream still waits for its first byte and the session has been silent ``silent_for``."""
        bound = self.bound(cfg)
        if bound <= 0 or silent_for < bound:
            return Action.WAIT
        if self._acked and replayable and cfg.replay > 0:
            return Action.RETRY
        return Action.SUSPECT

    def mark_suspect(self, received: int) -> bool:
        """Mark suspect at receive counter ``received``; True when it was healthy until now."""
        was = self._mark is None
        self._mark = received
        if was:
            self.suspect_count += 1
        return was

    def is_suspect(self, received: int) -> bool:
        """Suspect unless a frame arrived since it was marked (then it is healthy again)."""
        if self._mark is None:
            return False
        if received != self._mark:
            self._mark = None
            return False
        return True


class RetryBudget:
    """The connectors one request has tried, and whether it may try another."""

    __slots__ = ("attempts", "tried")

    def __init__(self, attempts: int) -> None:
        self.attempts = attempts
        # A tuple (at most ``attempts`` IDs): the empty one is shared, so the budget every open
        # stream keeps costs nothing until it is used; an empty set was 216 bytes a stream.
        self.tried: tuple[str, ...] = ()

    def use(self, connector_id: str) -> None:
        """Count an attempt on ``connector_id``."""
        if connector_id not in self.tried:
            self.tried = (*self.tried, connector_id)

    @property
    def left(self) -> bool:
        """Whether another connector may be tried."""
        return len(self.tried) < self.attempts


def prefer_healthy(candidates: list[T], suspect: list[bool]) -> list[T]:
    """The healthy candidates, or all of them when every one is suspect (never strand a tunnel)."""
    healthy = [c for c, s in zip(candidates, suspect, strict=True) if not s]
    return healthy if healthy else candidates
