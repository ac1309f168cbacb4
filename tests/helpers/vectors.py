"""Load the raw captures in ``shared/vectors/*/*.jsonl``: one record per recv()."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Chunk:
    conn: int
    direction: str  # "c2s" or "s2c"
    offset: int
    data: bytes


def load_chunks(path: Path) -> list[Chunk]:
    """Every data record of one capture, in file order."""
    chunks = []
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        if "hex" in rec:
            chunks.append(Chunk(rec["conn"], rec["dir"], rec["off"], bytes.fromhex(rec["hex"])))
    return chunks


def streams(path: Path) -> dict[tuple[int, str], bytes]:
    """Each (connection, direction) byte stream of a capture, reassembled in order."""
    out: dict[tuple[int, str], bytearray] = {}
    for c in load_chunks(path):
        buf = out.setdefault((c.conn, c.direction), bytearray())
        assert c.offset == len(buf), f"gap in {path.name} conn {c.conn} {c.direction}"
        buf += c.data
    return {k: bytes(v) for k, v in out.items()}


def captures(vectors_dir: Path) -> list[tuple[str, Path]]:
    """(dialect, path) for every capture file of both dialects."""
    out = []
    for dialect in ("relay-rc10", "tunnel-v3.2.6"):
        for p in sorted((vectors_dir / dialect).glob("*.jsonl")):
            out.append((dialect, p))
    return out
