"""Per-stream handling on the tunnel client: header, optional sniffing, node choice, dial, pipe.

Spec: docs/protocol.md, Per-stream header and smux frames (lifecycle); node choice in
docs/configuration.md, ``[[services]]``.

    stream:  01 00 FEALEN Addr#1(src) [Addr#2(dst host:port)] | payload ...
             \\___________ parse_stream_header ____________/   \\__ sniffed when enabled __/

A stream starts with a :class:`StreamHandler` as its sink. It collects bytes until the header
parses, optionally waits for the first payload bytes to sniff TLS SNI / HTTP Host, picks a
forwarder node, and hands the stream to a :class:`~burrow.net.pipe.StreamPipe` created before
the dial, so payload arriving while the local connection is being made is kept, in order.

Unlike gost, a malformed header closes only that stream, not the whole tunnel connection: one
bad stream should not cut every other visitor off.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from burrow.common.hostport import join_host_port
from burrow.common.logfmt import event
from burrow.config.plan_types import TargetNode, TunnelClientPlan
from burrow.net.mux_stream import MuxStream
from burrow.net.pipe import StreamPipe
from burrow.net.rejectlog import RejectLog
from burrow.net.tasks import TaskSet, deadline_missed
from burrow.proto.errors import ProtocolError
from burrow.proto.relay import MAX_MESSAGE_LEN
from burrow.proto.sniff import MAX_SNIFF_BYTES, NEED_MORE, Sniffed, sniff
from burrow.proto.stream_header import StreamHeader, parse_stream_header
from burrow.routing.nodes import RoundRobin, match_nodes

from .acks import ClientPipe, StreamAcks
from .dial import target_of
from .proxy_send import ProxyPipe
from .unreachable import http_reply_for, target_reason

log = logging.getLogger("burrow.client.streams")

MAX_HEADER_BYTES: Final = MAX_MESSAGE_LEN  # 4 + 65535: the largest header the wire can announce
HEADER_TIMEOUT: Final = 10.0
DIAL_TIMEOUT: Final = 10.0
MAX_MATCH_CACHE: Final = 1024  # (host, protocol) -> nodes; visitors pick hosts, so bound it


class StreamRouter:
    """Per-service state for the streams of a tunnel client: plan, node cursor, running dials."""

    def __init__(
        self,
        plan: TunnelClientPlan,
        *,
        header_timeout: float = HEADER_TIMEOUT,
        dial_timeout: float = DIAL_TIMEOUT,
    ) -> None:
        self.plan = plan
        self.header_timeout = header_timeout
        self.dial_timeout = dial_timeout
        self.sniff_timeout = plan.sniffing_timeout
        self.cursor = RoundRobin()
        self.tasks = TaskSet()
        self.reject = RejectLog(log)  # target dial failures: a few info lines per 10 s
        self.acks = StreamAcks()  # failover: ack new streams, beat while they wait
        self._matches: dict[tuple[str, str | None], list[TargetNode]] = {}

    def accept(self, stream: MuxStream) -> None:
        """on_stream callback of the MuxConnection: start handling a stream the server opened."""
        self.acks.opened(stream)
        StreamHandler(stream, self)

    def choose(self, host: str, protocol: str | None) -> TargetNode | None:
        """The forwarder node for a stream to ``host`` (late-relay semantics), or None."""
        key = (host, protocol)
        nodes = self._matches.get(key)
        if nodes is None:
            nodes = match_nodes(self.plan.nodes, host, protocol)
            if len(self._matches) >= MAX_MATCH_CACHE:
                self._matches.clear()
            self._matches[key] = nodes
        return self.cursor.pick(nodes)

    def reset(self) -> None:
        """A new plan: forget cached node matches and the round-robin position."""
        self._matches.clear()
        self.cursor = RoundRobin()
        self.sniff_timeout = self.plan.sniffing_timeout

    def close(self) -> None:
        """Cancel every dial still running (the service is stopping)."""
        self.tasks.cancel_all()
        self.acks.close()


class StreamHandler:
    """Sink of a new stream until it is routed: header, sniffing, then the pipe takes over."""

    __slots__ = ("_done", "_timer", "buf", "header", "router", "stream")

    def __init__(self, stream: MuxStream, router: StreamRouter) -> None:
        self.stream = stream
        self.router = router
        self.buf = bytearray()
        self.header: StreamHeader | None = None
        self._done = False
        stream.sink = self
        self._timer: asyncio.TimerHandle | None = _loop_of(stream).call_later(
            router.header_timeout, self._timed_out
        )

    # -- StreamSink -------------------------------------------------------------------------
    def stream_data(self, data: bytes | memoryview) -> None:
        if self._done:
            return
        self.buf += data
        if self.header is None:
            self._read_header()
        else:
            self._sniff()

    def stream_ended(self) -> None:
        self._finish()

    def stream_writable(self) -> None:
        pass

    def pause_source(self) -> None:
        pass

    def resume_source(self) -> None:
        pass

    # -- phases -------------------------------------------------------------------------------
    def _read_header(self) -> None:
        try:
            parsed = parse_stream_header(self.buf)
        except ProtocolError as exc:
            self._drop("bad stream header", error=str(exc))
            return
        if parsed is None:
            if len(self.buf) > MAX_HEADER_BYTES:
                self._drop("stream header too long")
            return
        self.header, n = parsed
        del self.buf[:n]
        self.stream.consumed(n)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        router = self.router
        if router.plan.sniffing and router.plan.network == "tcp":
            self._timer = _loop_of(self.stream).call_later(
                router.sniff_timeout, self._sniff_timed_out
            )
            self._sniff()
        else:
            self._route(None)

    def _sniff(self) -> None:
        result = sniff(self.buf) if self.buf else NEED_MORE
        if result is NEED_MORE and len(self.buf) < MAX_SNIFF_BYTES:
            return
        self._route(result if isinstance(result, Sniffed) else None)

    def _sniff_timed_out(self) -> None:
        # A server-speaks-first protocol sends nothing: route on the header alone.
        self._timer = None
        if not self._done:
            self._route(None)

    def _timed_out(self) -> None:
        self._timer = None
        if not self._done:
            self._drop("no stream header in time")

    def _route(self, sniffed: Sniffed | None) -> None:
        header = self.header
        assert header is not None
        host = header.host
        protocol: str | None = None
        if sniffed is not None:
            protocol = sniffed.protocol
            # HTTP is routed by its own Host; otherwise the header's host wins over the SNI.
            if sniffed.host and (sniffed.protocol == "http" or not host):
                host = sniffed.host
        node = self.router.choose(host, protocol)
        if node is None:
            self._drop("no forwarder node", host=host, protocol=protocol or "")
            return
        self._finish()
        early = [bytes(self.buf)] if self.buf else []
        self.buf = bytearray()
        stream, router = self.stream, self.router
        if router.plan.network == "udp":
            from burrow.client.udp_forward import bridge_stream_to_udp

            host_, port = target_of(node.addr)
            bridge_stream_to_udp(stream, host_, port, early)
            return
        if router.plan.proxy_protocol:
            # The backend reads the visitor's address first (gost's rtcp proxyProtocol).
            pipe: StreamPipe = ProxyPipe(
                stream, router.acks, router.plan.proxy_protocol, header.src, early=early
            )
        else:
            pipe = ClientPipe(stream, router.acks, early=early)
        loop = _loop_of(stream)
        dial = _dial(loop, pipe, stream, node, header, early[0] if early else b"", router.reject)
        router.tasks.spawn(loop, dial, router.dial_timeout)

    def _finish(self) -> None:
        self._done = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _drop(self, why: str, **fields: str) -> None:
        self._finish()
        event(log, logging.DEBUG, "stream.dropped", sid=self.stream.sid, reason=why, **fields)
        self.stream.close()


def _loop_of(stream: MuxStream) -> asyncio.AbstractEventLoop:
    return stream.conn.loop or asyncio.get_running_loop()


async def _dial(
    loop: asyncio.AbstractEventLoop,
    pipe: StreamPipe,
    stream: MuxStream,
    node: TargetNode,
    header: StreamHeader,
    early: bytes,
    reject: RejectLog,
) -> None:
    host, port = target_of(node.addr)
    try:
        await loop.create_connection(lambda: pipe, host, port)
    except OSError as exc:
        _dial_failed(pipe, stream, node, join_host_port(host, port), early, exc, reject)
        return
    except asyncio.CancelledError as exc:
        if deadline_missed(exc):
            _dial_failed(pipe, stream, node, join_host_port(host, port), early, None, reject)
            return
        pipe.close()
        raise
    event(
        log, logging.DEBUG, "stream.piped", sid=stream.sid, node=node.name,
        target=join_host_port(host, port), host=header.host,
    )  # fmt: skip


def _dial_failed(
    pipe: StreamPipe,
    stream: MuxStream,
    node: TargetNode,
    target: str,
    early: bytes,
    exc: OSError | None,
    reject: RejectLog,
) -> None:
    reply = http_reply_for(early)
    if reply is not None:
        stream.write(reply)  # sent before the FIN pipe.close() sends
    why = target_reason(exc)
    error = "timeout" if exc is None else str(exc) or type(exc).__name__
    fields = {"node": node.name, "target": target, "error": error, "http_502": reply is not None}
    reject(logging.INFO, "stream.dial_failed", why, sid=stream.sid, **fields)
    pipe.close()
