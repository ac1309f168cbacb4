"""Fuzzing RequestRewriter: only bytes or ForwardError, chunking never changes the output,
bounded buffering, and a visitor's forwarding headers never survive in a rewritten head."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from burrow.proto.http_forward import MAX_CHUNK_LINE, ForwardError, RequestRewriter
from burrow.proto.sniff import MAX_HTTP_HEAD

FUZZ = settings(max_examples=300, deadline=None)

PIECES = [
    b"GET / HTTP/1.1\r\n", b"POST /p HTTP/1.1\r\n", b"GET / HTTP/1.0\r\n", b"Host: app.test\r\n",
    b"Host: evil.test\r\n", b"Content-Length: 3\r\n", b"Transfer-Encoding: chunked\r\n",
    b"X-Forwarded-For: 6.6.6.6\r\n", b"Forwarded: for=6.6.6.6\r\n", b"Connection: upgrade\r\n",
    b"Upgrade: websocket\r\n", b"\r\n", b"\n", b"3\r\nabc\r\n", b"0\r\n\r\n", b"abc", b" ", b":",
]  # fmt: skip


def run(chunks: list[bytes]) -> tuple[bytes, ForwardError | None]:
    r = RequestRewriter("192.0.2.1", "app.test")
    out: list[bytes] = []
    try:
        for c in chunks:
            out.append(r.feed(c))
            assert len(r._buf) <= max(MAX_HTTP_HEAD, MAX_CHUNK_LINE) + 2
    except ForwardError as exc:
        return b"".join(out), exc
    return b"".join(out), None


@FUZZ
@given(st.lists(st.sampled_from(PIECES) | st.binary(max_size=40), max_size=40), st.data())
def test_chunking_is_invisible(parts: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(parts)
    whole, err = run([stream])
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    split, err2 = run(pieces)
    assert (err is None) == (err2 is None)
    if err is None:
        assert split == whole
    else:
        assert err2 is not None and err.status == err2.status
        assert whole.startswith(split) or split.startswith(whole)


@FUZZ
@given(st.binary(max_size=2000))
def test_random_bytes_never_raise_anything_else(blob: bytes) -> None:
    run([blob])
    run([blob[i : i + 7] for i in range(0, len(blob), 7)])
