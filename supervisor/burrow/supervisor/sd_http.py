"""SdServer: gost's SD HTTP plugin API over the cluster's Redis, on the cluster client's loop.

The request rules are ``burrow.cluster.sd_api`` (sans IO); this module reads HTTP/1.1 requests
(bounded head and body, a deadline on each), checks the bearer token in constant time, and does
the Redis writes in gost-plugins' layout, publishing each change on the cluster channel so
Burrow nodes learn at once. Redis unreachable: 503 (gost counts only 200, and retries).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import time
from typing import Any, cast

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from burrow.admin.api import tunnel_ref
from burrow.cluster import sd_api, store
from burrow.common.hostport import join_host_port
from burrow.common.logfmt import event

log = logging.getLogger("burrow.cluster.sd")

MAX_HEAD = 16 * 1024
READ_TIMEOUT = 10.0
# Requests served on one keep-alive connection before it is closed.
MAX_REQUESTS = 1000
# Open API connections; past this new ones are closed at once (a gost node needs one).
MAX_CONNECTIONS = 64
REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 405: "Method Not Allowed",
           413: "Payload Too Large", 503: "Service Unavailable"}  # fmt: skip


class SdServer:
    """Serves the SD API on ``host:port`` (port 0: any) with ``client`` as its store."""

    def __init__(
        self, client: aioredis.Redis, host: str, port: int, *, token: str | None, ttl: float
    ) -> None:
        self._redis = client
        self._host = host
        self._port = port
        self._token = token.encode() if token else None
        self._ttl = ttl
        self._server: asyncio.Server | None = None
        self._open = 0
        self.address = ""

    async def start(self) -> None:
        """Bind and serve (OSError when the address is taken)."""
        self._server = await asyncio.start_server(
            self._conn, self._host, self._port, limit=MAX_HEAD
        )
        sock = self._server.sockets[0].getsockname()
        self.address = join_host_port(self._host, int(sock[1]))
        event(log, logging.INFO, "cluster.sd_listening", address=self.address,
              token="required" if self._token else "none")  # fmt: skip

    async def close(self) -> None:
        """Stop accepting; open connections end with the loop."""
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)

    def _authorized(self, header: str) -> bool:
        if self._token is None:
            return True
        scheme, _, given = header.strip().partition(" ")
        ok = hmac.compare_digest(given.strip().encode(errors="surrogateescape"), self._token)
        return ok and scheme.lower() == "bearer"

    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._open >= MAX_CONNECTIONS:
            writer.close()  # gost retries; a flood must not pin the cluster client's loop
            return
        self._open += 1
        try:
            await self._serve(reader, writer)
        finally:
            self._open -= 1

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        peer_host = str(peer[0]) if isinstance(peer, tuple) else ""
        try:
            for _ in range(MAX_REQUESTS):
                if not await self._one(reader, writer, peer_host):
                    break
        except (
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            ConnectionError,
            TimeoutError,
            ValueError,
        ):
            pass  # a broken or slow client: drop it
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _one(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer_host: str
    ) -> bool:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
        lines = head.decode("latin-1").split("\r\n")
        method, target, _version = lines[0].split(" ", 2)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
        if "transfer-encoding" in headers:
            # gost sends Content-Length (a bytes.Reader body); anything else is not gost.
            await self._send(writer, 400, {"error": "send Content-Length, not chunked"}, close=True)
            return False
        length = int(headers.get("content-length", "0") or "0")
        if length < 0 or length > sd_api.MAX_BODY:
            await self._send(writer, 413, {"error": "body too large"}, close=True)
            return False
        body = await asyncio.wait_for(reader.readexactly(length), READ_TIMEOUT) if length else b""
        close = headers.get("connection", "").lower() == "close"
        if not self._authorized(headers.get("authorization", "")):
            event(log, logging.WARNING, "cluster.sd_unauthorized", peer=peer_host, method=method)
            await self._send(writer, 401, {"error": "missing or wrong bearer token"}, close=close)
            return not close
        _path, _, query = target.partition("?")
        call = sd_api.parse_request(method, query, body)
        if isinstance(call, sd_api.SdError):
            event(log, logging.WARNING, "cluster.sd_bad_request", peer=peer_host, method=method,
                  status=call.status, error=call.error)  # fmt: skip
            await self._send(writer, call.status, {"error": call.error}, close=close)
            return not close
        try:
            status, answer = await asyncio.wait_for(self._do(call, peer_host), READ_TIMEOUT)
        except (RedisError, OSError, TimeoutError) as exc:
            event(log, logging.ERROR, "cluster.sd_store_down", op=call.op, error=str(exc))
            status, answer = 503, {"error": "cluster store unreachable"}
        await self._send(writer, status, answer, close=close)
        return not close

    async def _do(self, call: sd_api.SdCall, peer_host: str) -> tuple[int, dict[str, Any]]:
        r = self._redis
        now = time.time()
        if call.op == "get":
            fields = cast(dict[str, str], await r.hgetall(call.name))
            live = store.Liveness("", self._ttl, now)
            return 200, {"services": store.sd_services(call.name, fields, live)}
        ref = {"tunnel": tunnel_ref(call.name), "connector": call.id, "node": call.node}
        if call.op == "renew":
            raw = cast(str | None, await r.hget(call.name, call.id))
            entry = store.decode_entry(raw) if raw else None
            if entry is None:
                return 200, {"ok": False}
            renewed = store.Entry(entry.node, entry.network, entry.address, int(now), entry.kind)
            async with r.pipeline(transaction=False) as pipe:
                pipe.hset(call.name, call.id, store.encode_entry(renewed))
                pipe.expire(call.name, store.KEY_EXPIRY)
                pipe.sadd(store.TUNNELS, call.name)
                await pipe.execute()
            event(log, logging.DEBUG, "cluster.sd_renew", **ref)
            return 200, {"ok": True}
        if call.op == "register":
            address = sd_api.fill_host(call.address, peer_host)
            entry = store.Entry(call.node, call.network, address, int(now), store.KIND_GOST)
            msg = store.Message("register", call.name, call.id, call.node)
            async with r.pipeline(transaction=False) as pipe:
                pipe.hset(call.name, call.id, store.encode_entry(entry))
                pipe.expire(call.name, store.KEY_EXPIRY)
                pipe.sadd(store.TUNNELS, call.name)
                pipe.publish(store.CHANNEL, store.encode_message(msg))
                await pipe.execute()
            event(
                log,
                logging.INFO,
                "cluster.sd_register",
                address=address,
                network=call.network,
                **ref,
            )
            return 200, {"ok": True}
        msg = store.Message("deregister", call.name, call.id, call.node)
        async with r.pipeline(transaction=False) as pipe:
            pipe.hdel(call.name, call.id)
            pipe.publish(store.CHANNEL, store.encode_message(msg))
            await pipe.execute()
        event(log, logging.INFO, "cluster.sd_deregister", **ref)
        return 200, {"ok": True}

    @staticmethod
    async def _send(
        writer: asyncio.StreamWriter, status: int, data: dict[str, Any], *, close: bool
    ) -> None:
        body = json.dumps(data, separators=(",", ":")).encode()
        head = (
            f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"Connection: {'close' if close else 'keep-alive'}\r\n\r\n"
        )
        writer.write(head.encode() + body)
        await asyncio.wait_for(writer.drain(), READ_TIMEOUT)
