"""Connector IDs of BINDs (burrow.common.ids.random_uuid): version-4 UUIDs, distinct, per process.

They are made 256 at a time (one urandom() call), so a forked worker must not reuse its parent's.
"""

from __future__ import annotations

import os
import uuid

from burrow.common import ids
from burrow.common.ids import random_uuid


def test_random_ids_are_distinct_version_4_uuids() -> None:
    got = [random_uuid() for _ in range(3 * ids._RANDOM_BATCH + 7)]  # several batches
    assert len(set(got)) == len(got)
    for raw in got:
        u = uuid.UUID(bytes=raw)
        assert (u.version, u.variant) == (4, uuid.RFC_4122)


def test_a_forked_child_does_not_reuse_the_parents_batch() -> None:
    random_uuid()  # the parent holds a batch now
    assert ids._random_ids
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next IDs, then leave without pytest's teardown
        try:
            os.write(w, b"".join(random_uuid() for _ in range(4)))
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        child = f.read()
    os.waitpid(pid, 0)
    parent = b"".join(random_uuid() for _ in range(4))
    assert len(child) == 64
    assert child != parent
