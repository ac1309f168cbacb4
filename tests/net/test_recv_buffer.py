"""The TLS link's receive buffers: reused only when free, never kept for small reads."""

from __future__ import annotations

from burrow.net.recv_buffer import KEEP_ABOVE, KEPT_SIZE, RecvBuffer, RecvBuffers


def test_a_free_buffer_is_reused_for_the_next_large_read() -> None:
    bufs = RecvBuffers()
    first = bufs.take(200_000)
    assert type(first) is RecvBuffer and len(first) == KEPT_SIZE
    first_id = id(first)
    del first  # the reader dropped its views: nothing holds the buffer
    assert id(bufs.take(250_000)) == first_id


def test_a_buffer_someone_still_holds_a_view_of_is_never_written_again() -> None:
    bufs = RecvBuffers()
    buf = bufs.take(200_000)
    buf[:5] = b"hello"
    queued = memoryview(buf)[:5]  # as a transport queues a view it could not send yet
    del buf
    other = bufs.take(200_000)
    other[:5] = b"later"
    assert bytes(queued) == b"hello"
    del queued, other


def test_small_reads_get_their_own_buffer_and_let_the_kept_one_go() -> None:
    bufs = RecvBuffers()
    bufs.take(KEEP_ABOVE + 1)
    small = bufs.take(1000)
    assert len(small) == 1000
    # An idle link (keepalives only) holds no large buffer.
    assert bufs._kept is None
    # A read larger than the usual size gets a buffer that fits it.
    assert len(bufs.take(KEPT_SIZE + 10)) == KEPT_SIZE + 10
