"""Load tool of the scale benchmark: N tunnel clients and M visitors in one process (uvloop).

Built on Burrow's sans-IO codecs only (burrow.proto.relay, burrow.proto.smux), so it measures the
server, not a client implementation. Driven by ``scale.py`` over stdin / stdout, one JSON object
per line each way:

    {"op": "bind"}              -> {"ok": n, "fail": n, "seconds": s, "cpu": this tool's CPU s}
    {"op": "route", "n": K}     -> {"entry": [latencies s], "connect": [...], "fail": n}
    {"op": "hold", "m": M, "conc": C} -> {"held": n, "fail": n, "seconds": s, "why": {kind: n},
                                          "open": held streams not closed by the server}
                                   (M by this process, cumulative; C connection attempts at once)
    {"op": "alive"}             -> {"alive": tunnels still up, "streams": streams open on them}

One process holds the N tunnels (10,000 file descriptors); visitors that stay open go through
further processes (``--offset``), so none needs more open files than an unprivileged hard limit
of 20,000 allows.

Tunnel i (0-based) has ID ``tunnel_id(i)`` and host ``t<i>.scale``; even i speak the relay
dialect (gost rc: smux v1, 16-byte Tunnel feature, one Addr), odd i the tunnel dialect (gost
3.x: smux v2, 20 bytes, two Addrs). Each session sends a NOP every 10 s (gost's
keepAliveInterval) from one shared sweep. A stream the server opens gets its relay header
stripped, then an HTTP request is answered with a tiny 200 (keep-alive) and anything else is
echoed. Connections are spread over source addresses 127.0.0.2..127.0.0.9 so 100,000 of them fit
in the ephemeral port range.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import select
import socket
import sys
import time
from pathlib import Path

import uvloop

sys.path[:0] = [str(Path(__file__).parents[2] / d) for d in ("shared", "worker")]

from burrow.common.ids import TunnelId
from burrow.proto.addr import Address
from burrow.proto.relay import Cmd, RelayRequest, parse_response
from burrow.proto.relay_features import AddrFeature, TunnelFeature
from burrow.proto.smux import SmuxSession, StreamData, StreamEnded, StreamOpened
from burrow.proto.smux_frame import ClosedStreamError, SmuxConfig

SOURCES = [f"127.0.0.{i}" for i in range(2, 10)]
IP_BIND_ADDRESS_NO_PORT = 24  # Linux: pick the port at connect() time, per 4-tuple
CONCURRENCY = 256
BIND_TIMEOUT = 30.0  # a BIND unanswered this long fails (10 s failed 2,089 at load average 17)
BIND_CONCURRENCY = 256  # BINDs in flight in burst_bind (1,024 was no faster)
TIMEOUT = 10.0
# Holding is about capacity, not latency (the route phase measures that): on a host with more
# runnable processes than cores a new connection may wait long for its turn, which is no failure
# of the server's. Failures are counted by kind, so a refusal is never hidden in a timeout.
HOLD_TIMEOUT = 60.0
HOLD_ATTEMPTS = 2  # a hold attempt that timed out (nothing refused or closed it) is tried again
HTTP_REPLY = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok"
V1 = SmuxConfig(version=1)
V2 = SmuxConfig(version=2, max_stream_buffer=1048576)


def tunnel_id(i: int) -> str:
    """Deterministic, distinct UUID text of tunnel ``i``."""
    return f"5ca1ab1e-{i >> 16:04x}-4000-8000-{i:012x}"


def host(i: int) -> str:
    return f"t{i}.scale"


def source(k: int) -> socket.socket:
    """A non-blocking TCP socket bound to one of SOURCES (port chosen at connect)."""
    s = socket.socket()
    s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
    s.bind((SOURCES[k % len(SOURCES)], 0))
    s.setblocking(False)
    return s


async def dial(port: int, k: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    loop = asyncio.get_running_loop()
    s = source(k)
    await loop.sock_connect(s, ("127.0.0.1", port))
    return await asyncio.open_connection(sock=s)


def burst_bind(
    port: int,
    requests: list[bytes],
    tunnels: list[Tunnel],
    conc: int = BIND_CONCURRENCY,
    timeout: float = BIND_TIMEOUT,
) -> list[tuple[socket.socket, bytes] | None]:
    """Send every BIND and check its reply with plain sockets and one epoll, ``conc`` at once.

    Per BIND: connect, one send, one recv, parse_response (status OK and a connector ID). The
    tool shares the server's 2 cores, so its CPU counts against the registration time: this is
    about a third of a uvloop Protocol's cost per connection. Returns per request the connected
    socket (non-blocking) and what came after the reply, or None if it failed; a connection
    silent for ``timeout`` fails. Answered tunnels get their keepalives meanwhile (each
    ``tunnels[i].tick`` once a second).
    """
    ep = select.epoll()
    out: list[tuple[socket.socket, bytes] | None] = [None] * len(requests)
    pending: dict[int, tuple[int, socket.socket, bytearray, float]] = {}
    addr = ("127.0.0.1", port)
    nxt, n = 0, len(requests)
    scanned = time.monotonic()
    while nxt < n or pending:
        while nxt < n and len(pending) < conc:
            s = socket.socket()
            try:
                s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
                s.bind((SOURCES[nxt % len(SOURCES)], 0))
                s.settimeout(timeout)
                s.connect(addr)  # loopback: the kernel's handshake, no server turn needed
                s.send(requests[nxt])
                s.setblocking(False)
            except OSError:
                s.close()
            else:
                pending[s.fileno()] = (nxt, s, bytearray(), time.monotonic())
                ep.register(s.fileno(), select.EPOLLIN)
            nxt += 1
        for fd, _ in ep.poll(1.0):
            i, s, buf, _t = pending[fd]
            try:
                data = s.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            buf += data
            got = parse_response(buf) if data else None
            if data and got is None:
                continue  # a partial reply
            ep.unregister(fd)
            del pending[fd]
            if got is None or got[0].status != 0 or got[0].connector_id is None:
                s.close()  # closed, refused or a reply without its connector ID
                continue
            out[i] = (s, bytes(buf[got[1] :]))
            tunnels[i].answered(s)
        now = time.monotonic()
        if now < scanned + 1.0:
            continue
        scanned = now  # once a second: a scan of every pending one per poll would cost more
        for i in range(nxt):
            tunnels[i].tick(now)  # NOPs of the sessions answered so far
        for fd, (_i, s, _b, since) in list(pending.items()):
            if now - since > timeout:
                ep.unregister(fd)
                del pending[fd]
                s.close()
    ep.close()
    return out


class Tunnel(asyncio.Protocol):
    """One tunnel client connection: BIND, then the smux server side of the session."""

    def __init__(self, i: int, request: bytes = b"", bound: bool = False) -> None:
        self.i = i
        self.req = request  # the BIND, encoded before the clock starts (or on connect)
        self.sent = bound  # BIND sent and its reply checked already (burst_bind)
        self.sock: socket.socket | None = None  # burst_bind's socket until the loop takes it
        self.v2 = bool(i & 1)
        self.session: SmuxSession | None = None
        self.transport: asyncio.Transport | None = None
        self.bound: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.buf = b""
        self.streams: dict[int, bytearray | None] = {}  # sid -> header bytes so far (None: past)
        self.alive = False

    def request(self) -> bytes:
        tid = TunnelId.parse(tunnel_id(self.i))
        empty = AddrFeature(Address("", 0, 3))
        if self.v2:
            src = AddrFeature(Address.of("127.0.0.1", 40000 + self.i % 20000))
            feats = (src, empty, TunnelFeature(tid, 20))
        else:
            feats = (empty, TunnelFeature(tid, 16))
        return RelayRequest(Cmd.BIND, feats).encode()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if self.sent:
            self.sock = None  # uvloop owns it from now on
        else:
            self.transport.write(self.req or self.request())

    def _start(self) -> None:
        self.session = SmuxSession(V2 if self.v2 else V1, client=False, now=time.monotonic())
        self.alive = True
        self.bound.set_result(True)

    def answered(self, sock: socket.socket) -> None:
        """burst_bind got this tunnel's reply on ``sock``: the session starts now, and its
        keepalives go out on the plain socket until the loop takes it (a long burst outlasts
        the server's 30 s keepalive timeout)."""
        self.sock = sock
        self._start()

    def data_received(self, data: bytes) -> None:
        if self.session is None:
            self.buf += data
            got = parse_response(self.buf)
            if got is None:
                return
            resp, used = got
            data, self.buf = self.buf[used:], b""
            if resp.status != 0:
                self.bound.set_result(False)
                self.transport.close()  # type: ignore[union-attr]
                return
            self._start()
            if not data:
                return
        out: list[bytes | memoryview] = []
        sess = self.session
        for ev in sess.receive_data(data, time.monotonic()):
            if type(ev) is StreamOpened:
                self.streams[ev.sid] = bytearray()
            elif type(ev) is StreamData:
                self._on_data(ev.sid, bytes(ev.data), out)
            elif type(ev) is StreamEnded:
                self.streams.pop(ev.sid, None)
                if sess.is_open(ev.sid):
                    out.append(sess.close_stream(ev.sid))
        if out:
            self.transport.writelines(out)  # type: ignore[union-attr]

    def _on_data(self, sid: int, data: bytes, out: list[bytes | memoryview]) -> None:
        sess = self.session
        assert sess is not None
        if upd := sess.consumed(sid, len(data)):
            out.append(upd)
        head = self.streams.get(sid, None)
        if head is not None:
            head += data
            got = parse_response(head)  # the server's per-stream relay header
            if got is None:
                return
            data = bytes(head[got[1] :])
            self.streams[sid] = None
            if not data:
                return
        reply = HTTP_REPLY if data.startswith(b"GET ") else data
        try:
            bufs, _ = sess.send(sid, reply)
        except ClosedStreamError:
            return  # its FIN came in the same read (the visitor gave up)
        out.extend(bufs)

    def tick(self, now: float) -> None:
        if self.session is None or not self.alive:
            return
        if self.transport is None:
            if self.sock is not None:  # still in burst_bind
                nop, _dead = self.session.poll(now)
                if nop:
                    try:
                        self.sock.send(nop)
                    except BlockingIOError:
                        pass  # a full send buffer: the peer is reading nothing anyway
            return
        nop, _dead = self.session.poll(now)
        if nop:
            self.transport.write(nop)

    def connection_lost(self, exc: Exception | None) -> None:
        self.alive = False
        if not self.bound.done():
            self.bound.set_result(False)


class Load:
    """Every tunnel and held visitor of the run."""

    def __init__(self, relay: int, entry: int, tunnels: int, offset: int = 0) -> None:
        self.relay, self.entry, self.n, self.offset = relay, entry, tunnels, offset
        self.tunnels: list[Tunnel] = []
        self.held: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.requests: list[bytes] = []
        self.rng = random.Random(15)
        self.why = {"timeout": 0, "refused": 0, "closed": 0, "retried": 0}  # by kind

    async def bind(self) -> dict[str, float]:
        # Encoded up front: 25 us of this tool's CPU per BIND is not the server's registration
        # time, and both share the same 2 cores.
        self.requests = [Tunnel(i).request() for i in range(self.n)]
        self.tunnels = [Tunnel(i, bound=True) for i in range(self.n)]
        t0, c0 = time.perf_counter(), time.process_time()
        got = burst_bind(self.relay, self.requests, self.tunnels)
        secs, cpu = time.perf_counter() - t0, time.process_time() - c0
        # The answered connections become uvloop transports after the clock: a client has no
        # such step (scale.py prints this tool's CPU for the burst, this excluded).
        loop = asyncio.get_running_loop()
        loop.create_task(self._keepalive())  # before the hand-over: it may take seconds
        ok = 0
        for t, entry in zip(self.tunnels, got, strict=True):
            if entry is None:
                continue
            s, rest = entry
            try:
                await loop.create_connection(lambda t=t: t, sock=s)  # type: ignore[misc]
            except OSError:
                t.alive = False
                continue
            ok += 1
            if rest:
                t.data_received(rest)
        return {"ok": ok, "fail": self.n - ok, "seconds": secs, "cpu": cpu}

    async def _keepalive(self) -> None:
        # One sweep a second for every session, as cheap for the tool as it should be for servers.
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for t in self.tunnels:
                t.tick(now)

    async def _entry_once(self, i: int, k: int, keep: bool) -> float:
        t0 = time.perf_counter()
        r, w = await dial(self.entry, k)
        try:
            w.write(f"GET / HTTP/1.1\r\nHost: {host(i)}\r\n\r\n".encode())
            head = await r.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200 "):
                raise ConnectionRefusedError(f"entry point: {head[:12]!r}")  # a 503: no tunnel
            await r.readexactly(2)
        except BaseException:
            w.close()  # a timed-out attempt must not stay open as a stream nobody counts
            raise
        dt = time.perf_counter() - t0
        self._done(r, w, keep)
        return dt

    async def _connect_once(self, i: int, k: int, keep: bool) -> float:
        t0 = time.perf_counter()
        r, w = await dial(self.relay, k)
        feats = (
            AddrFeature(Address("", 0, 3)),
            AddrFeature(Address.from_hostport(f"{host(i)}:80", force_domain=True)),
            TunnelFeature(TunnelId.parse(tunnel_id(i)), 16),
        )
        try:
            w.write(RelayRequest(Cmd.CONNECT, feats).encode() + b"x")
            head = await r.readexactly(4)
            await r.readexactly(int.from_bytes(head[2:4], "big"))
            if head[1] != 0:
                raise ConnectionRefusedError(f"CONNECT status {head[1]}")
            await r.readexactly(1)
        except BaseException:
            w.close()  # as in _entry_once
            raise
        dt = time.perf_counter() - t0
        self._done(r, w, keep)
        return dt

    def _done(self, r: asyncio.StreamReader, w: asyncio.StreamWriter, keep: bool) -> None:
        if keep:
            self.held.append((r, w))
        else:
            w.close()

    async def route(self, n: int) -> dict[str, object]:
        entry: list[float] = []
        connect: list[float] = []
        fail = 0
        for k in range(n):
            i = self.rng.randrange(self.n)
            try:
                async with asyncio.timeout(TIMEOUT):
                    if k & 1:
                        connect.append(await self._connect_once(i, k, False))
                    else:
                        entry.append(await self._entry_once(i, k, False))
            except (OSError, TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                fail += 1
        return {"entry": entry, "connect": connect, "fail": fail}

    async def hold(self, m: int, conc: int = CONCURRENCY) -> dict[str, float]:
        sem = asyncio.Semaphore(conc)
        fail = 0
        why = self.why

        async def one(k: int) -> None:
            nonlocal fail
            async with sem:
                i = k % self.n
                for attempt in range(HOLD_ATTEMPTS):
                    try:
                        async with asyncio.timeout(HOLD_TIMEOUT):
                            if k & 1:
                                await self._connect_once(i, k, True)
                            else:
                                await self._entry_once(i, k, True)
                        return
                    except TimeoutError:
                        # Nothing refused or closed it; on 2 cores shared by 17 processes this
                        # tool may not have run to read the answer. A client tries again (the
                        # first connection is closed); counted apart, not as held-first-time.
                        if attempt + 1 < HOLD_ATTEMPTS:
                            why["retried"] += 1
                            continue
                        why["timeout"] += 1
                    except ConnectionRefusedError:
                        why["refused"] += 1  # the server answered: no connector for that tunnel
                    except (OSError, asyncio.IncompleteReadError, ConnectionError):
                        why["closed"] += 1  # reset or closed before the reply
                    break
                fail += 1

        t0 = time.perf_counter()
        start = len(self.held) + fail
        base = self.offset

        async def progress() -> None:
            # On stderr (the tool's log): where a slow or stuck phase got to.
            while True:
                await asyncio.sleep(15.0)
                print(f"hold: {len(self.held)} held ({self.still_open()} still open), {fail} "
                      f"failed {why} of {m} after {time.perf_counter() - t0:.0f} s",
                      file=sys.stderr, flush=True)  # fmt: skip

        report = asyncio.get_running_loop().create_task(progress())
        try:
            await asyncio.gather(*(one(base + k) for k in range(start, max(start, m))))
        finally:
            report.cancel()
        secs = time.perf_counter() - t0
        return {"held": len(self.held), "fail": fail, "seconds": secs, "why": dict(why),
                "open": self.still_open()}  # fmt: skip

    def still_open(self) -> int:
        """Held streams the server has not closed (its FIN shows as EOF, a reset as closing)."""
        return sum(1 for r, w in self.held if not (r.at_eof() or w.is_closing()))

    def alive(self) -> dict[str, int]:
        up = [t for t in self.tunnels if t.alive]
        return {"alive": len(up), "streams": sum(len(t.streams) for t in up)}


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--relay", type=int, required=True)
    ap.add_argument("--entry", type=int, required=True)
    ap.add_argument("--tunnels", type=int, required=True, help="tunnel IDs 0..N-1 exist")
    ap.add_argument("--offset", type=int, default=0, help="first stream number (spreads tools)")
    a = ap.parse_args()
    load = Load(a.relay, a.entry, a.tunnels, a.offset)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print("READY", flush=True)
    while line := await reader.readline():
        cmd = json.loads(line)
        op = cmd["op"]
        if op == "bind":
            out: object = await load.bind()
        elif op == "route":
            out = await load.route(int(cmd["n"]))
        elif op == "hold":
            out = await load.hold(int(cmd["m"]), int(cmd.get("conc", CONCURRENCY)))
        else:
            out = load.alive()
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    uvloop.run(main())
