"""TunnelClient: the rtcp/rudp side of a tunnel. Dial, BIND, serve streams, reconnect.

Spec: docs/protocol.md, BIND and smux frames (the client is the smux server); reconnect in
docs/architecture.md, Flows (b).

    client                                server
      | -- TCP connect ------------------->  |
      | -- BIND [FUDP] features ---------->  |  docs/protocol.md, BIND; built in dial.py
      | <- 01 00 FEALEN Addr Tunnel(conn) -  |  status != 0: refused, retry later
      | <====== smux, server opens streams   |  each stream: header + payload (streams.py)

The handshake runs on the raw socket (tls/ws/wss: on a small protocol, client/link.py); the
connection is then handed to a MuxConnection that gets the bytes the server sent right behind its
reply before anything else it reads.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from typing import Final

from burrow.common.logfmt import event, tunnel_ref
from burrow.config.limits import Limits
from burrow.config.plan_types import MuxOptions, TunnelClientPlan
from burrow.net.drain import streams_done
from burrow.net.mux import MuxConnection, MuxStream
from burrow.proto.errors import ProtocolError
from burrow.proto.relay import Status, status_text
from burrow.proto.smux import SmuxConfig, SmuxSession
from burrow.worker.stats import STATS, Tracked

from .dial import RESPONSE_TIMEOUT, build_bind_request, endpoint_text
from .link import connect_server
from .status import (
    Failure,
    FailureStreak,
    bind_reason,
    dial_reason,
    down_reason,
    refused_reason,
)
from .streams import StreamRouter

log = logging.getLogger("burrow.client.tunnel")

BACKOFF_INITIAL: Final = 1.0
BACKOFF_MAX: Final = 5.0
BACKOFF_JITTER: Final = 0.2  # up to +20%, so a fleet of clients does not reconnect in lockstep
STABLE_AFTER: Final = 10.0  # a tunnel up this long resets the backoff
PLAN_CHANGED: Final = "plan changed"


def smux_config(mux: MuxOptions) -> SmuxConfig:
    """The smux session settings for a server node's mux options (fields map 1:1)."""
    return SmuxConfig(
        version=mux.version,
        max_frame_size=mux.max_frame_size,
        max_receive_buffer=mux.max_receive_buffer,
        max_stream_buffer=mux.max_stream_buffer,
        keepalive_interval=mux.keepalive_interval,
        keepalive_timeout=mux.keepalive_timeout,
        keepalive_disabled=mux.keepalive_disabled,
    )


class _BoundMux(MuxConnection):
    """MuxConnection that first consumes the bytes read past the BIND reply."""

    def __init__(
        self,
        session: SmuxSession,
        trailing: bytes,
        *,
        on_stream: Callable[[MuxStream], None] | None,
        on_closed: Callable[[MuxConnection, str], None],
        name: str,
        stream_buffer: int,
    ) -> None:
        super().__init__(
            session,
            on_stream=on_stream,
            on_closed=on_closed,
            name=name,
            stream_buffer=stream_buffer,
        )
        self._trailing = trailing

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        # Here, before the transport's first read, so the order of bytes is kept.
        data, self._trailing = self._trailing, b""
        if data:
            self.data_received(data)


class TunnelClient:
    """One rtcp/rudp service: keeps one tunnel connection to its server up, forever."""

    def __init__(
        self, plan: TunnelClientPlan, *, worker: int = 0, limits: Limits | None = None
    ) -> None:
        self.plan = plan
        self.limits = limits if limits is not None else Limits()
        self.worker = worker
        self.name = plan.name
        self.router = StreamRouter(plan)
        self.mux: MuxConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._draining = False
        self._streak = FailureStreak()

    # -- worker lifecycle: start / apply / drain / close ----------------------------------------
    async def start(self) -> None:
        """Run the session loop in a task this service owns."""
        self._task = asyncio.get_running_loop().create_task(self.run(), name=f"client:{self.name}")

    def apply(self, plan: TunnelClientPlan) -> None:
        """Take a new plan: new targets serve the next streams; a new server or ID reconnects."""
        old, self.plan = self.plan, plan
        self.router.plan = plan
        self.router.reset()
        same = (old.server, old.tunnel_id, old.network) == (
            plan.server,
            plan.tunnel_id,
            plan.network,
        )
        if not same and self.mux is not None:
            # The session loop dials again with the new plan; open streams end with it.
            self.mux.close(PLAN_CHANGED)

    async def drain(self) -> None:
        """Refuse new streams and return when the open ones have ended.

        A gost server sees the session stay up; a SYN it sends meanwhile is answered with a FIN
        (the stream closes at once, as for a client that has no route), so its visitor gets a
        closed connection and may retry on another connector.
        """
        self._draining = True
        mux = self.mux
        if mux is None or mux.closed:
            return
        mux.on_stream = None
        await streams_done([mux])

    def close(self) -> None:
        """Stop now: cancel the session loop (which aborts the tunnel connection)."""
        if self._task is not None:
            self._task.cancel()

    async def run(self) -> None:
        """Dial, BIND, serve streams, reconnect with backoff; runs until cancelled."""
        delay = BACKOFF_INITIAL
        try:
            while True:
                loop = asyncio.get_running_loop()
                result = await self._session()
                if self._draining:
                    if isinstance(result, tuple):
                        tunnel = tunnel_ref(self.plan.tunnel_id.text, log)
                        why = f"{result[1]} (while draining)"
                        event(log, logging.INFO, "tunnel.down", tunnel=tunnel, reason=why,
                              service=self.plan.name)  # fmt: skip
                    await asyncio.Future()  # stopping: do not dial again, wait to be cancelled
                up_since = result[0] if isinstance(result, tuple) else None
                if up_since is not None and loop.time() - up_since >= STABLE_AFTER:
                    delay = BACKOFF_INITIAL
                wait = delay * (1.0 + random.uniform(0.0, BACKOFF_JITTER))
                self._report(result, round(wait, 2))
                event(log, logging.DEBUG, "tunnel.retry", tunnel=tunnel_ref(self.plan.tunnel_id.text, log),
                      service=self.plan.name, delay=round(wait, 2))  # fmt: skip
                await asyncio.sleep(wait)
                delay = min(delay * 2, BACKOFF_MAX)
        finally:
            self.router.close()
            if self.mux is not None:
                self.mux.abort("service stopped")

    def _report(self, result: tuple[float, str] | Failure, retry_in: float) -> None:
        """Log how the last attempt ended, with the next retry delay (see client/status.py)."""
        plan = self.plan
        where = endpoint_text(plan.server.addr.host, plan.server.addr.port)
        tunnel = tunnel_ref(plan.tunnel_id.text, log)
        if isinstance(result, Failure):
            level = self._streak.failed(asyncio.get_running_loop().time())
            event(log, level, result.event, tunnel=tunnel, server=where, service=plan.name,
                  attempt=self._streak.count, retry_in=retry_in, **result.fields)  # fmt: skip
            return
        reason = result[1]
        # A tunnel that was serving and ends is news (warning), unless we asked for it.
        level = logging.INFO if reason == PLAN_CHANGED else logging.WARNING
        event(log, level, "tunnel.down", tunnel=tunnel, server=where, reason=reason,
              service=plan.name, retry_in=retry_in)  # fmt: skip

    async def _session(self) -> tuple[float, str] | Failure:
        """One tunnel connection: (when it came up, loop time; why it ended) or why it failed."""
        plan, server = self.plan, self.plan.server
        where = endpoint_text(server.addr.host, server.addr.port)
        loop = asyncio.get_running_loop()
        try:
            link = await connect_server(server, server.connect_timeout)
        except (OSError, TimeoutError) as exc:
            return Failure(
                "tunnel.dial_failed",
                {"reason": dial_reason(exc), "error": str(exc) or type(exc).__name__},
            )
        try:
            response, trailing = await link.handshake(
                lambda src: build_bind_request(
                    server, plan.tunnel_id, udp=plan.network == "udp", src=src
                ),
                RESPONSE_TIMEOUT,
            )
        except (OSError, TimeoutError, ProtocolError) as exc:
            link.close()
            return Failure(
                "tunnel.bind_failed",
                {"reason": bind_reason(exc), "error": str(exc) or type(exc).__name__},
            )
        except BaseException:
            link.close()
            raise
        if response.status != Status.OK:
            link.close()
            return Failure(
                "tunnel.refused",
                {"reason": refused_reason(response.status), "status": status_text(response.status)},
            )

        ended: asyncio.Future[str] = loop.create_future()

        def closed(_: MuxConnection, reason: str) -> None:
            if not ended.done():
                ended.set_result(reason)

        lim = self.limits
        session = SmuxSession(
            smux_config(server.mux),
            client=False,
            now=time.monotonic(),
            max_streams=lim.max_streams_per_session,
            frames_per_turn=lim.frames_per_turn,
        )
        mux = _BoundMux(
            session,
            trailing,
            on_stream=None if self._draining else self.router.accept,
            on_closed=closed,
            name=plan.name,
            stream_buffer=lim.stream_buffer,
        )
        try:
            await link.attach(mux)
        except BaseException:
            link.close()
            raise
        self.mux = mux
        connector = response.connector_id
        addrs = response.addrs
        up_since = loop.time()
        STATS.track(
            Tracked(plan.name, "client", plan.tunnel_id.text,
                    connector.text if connector is not None else "", plan.network,
                    server.dialect, where, time.time(), mux)
        )  # fmt: skip
        failed_before = self._streak.registered()
        # The server accepted the BIND: this, not READY, is "registered" (README, Status lines).
        event(
            log, logging.INFO, "tunnel.up", tunnel=tunnel_ref(plan.tunnel_id.text, log),
            connector=connector.text if connector is not None else "", server=where,
            addr=addrs[0].hostport() if addrs else "", network=plan.network,
            service=plan.name, worker=self.worker,
            **({"failed_attempts": failed_before} if failed_before else {}),
        )  # fmt: skip
        try:
            reason = await ended
        except asyncio.CancelledError:
            mux.abort("service stopped")
            event(log, logging.INFO, "tunnel.down", tunnel=tunnel_ref(plan.tunnel_id.text, log),
                  server=where, reason="stopping" + (" (drained)" if self._draining else ""),
                  service=plan.name)  # fmt: skip
            raise
        finally:
            self.mux = None
            STATS.untrack(mux)
        return up_since, down_reason(reason)
