"""BusClient against a real ZeroMQ ROUTER/PUB pair driven by a minimal broker in the test."""

from __future__ import annotations

import asyncio
import itertools
import shutil
import statistics
import tempfile
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvloop
import zmq
import zmq.asyncio

from burrow.ipc.membership import Registry
from burrow.ipc.messages import (
    ConnectorBatch,
    ConnectorInfo,
    ConnectorUp,
    Delta,
    Heartbeat,
    Hello,
    Ready,
    SnapshotRequest,
    WorkerMessage,
    decode_worker,
    encode,
)
from burrow.ipc.spec import WorkerSpec
from burrow.worker.bus import BusClient

WAIT = 5.0
TID = "4d21094e-b74c-4916-86c1-d9fa36ea677b"


def info(cid: str, worker: int = 1) -> ConnectorInfo:
    return ConnectorInfo(
        tunnel_id=TID,
        connector_id=cid,
        worker=worker,
        network="tcp",
        weight=1,
        dialect="relay",
        peer="127.0.0.1:9",
        since=1.0,
    )


class Broker:
    """The supervisor's side, reduced to what the Clone pattern needs."""

    def __init__(self, rundir: Path) -> None:
        self.registry_endpoint = f"ipc://{rundir}/registry"
        self.updates_endpoint = f"ipc://{rundir}/updates"
        self.registry = Registry()
        self.ctx = zmq.asyncio.Context()
        self.router = self.ctx.socket(zmq.ROUTER)
        self.pub = self.ctx.socket(zmq.PUB)
        for sock in (self.router, self.pub):
            sock.setsockopt(zmq.LINGER, 0)
        self.router.bind(self.registry_endpoint)
        self.pub.bind(self.updates_endpoint)
        self.received: asyncio.Queue[tuple[float, WorkerMessage]] = asyncio.Queue()
        # Called with the snapshot about to be sent; lets a test publish a racing delta first.
        self.before_snapshot: Callable[[], None] | None = None

    def publish(self, delta: Delta | None) -> None:
        assert delta is not None
        self.pub.send(encode(delta))

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            *envelope, data = await self.router.recv_multipart()
            msg = decode_worker(data)
            if isinstance(msg, ConnectorUp):
                self.publish(self.registry.up(msg.info))
            elif isinstance(msg, ConnectorBatch):
                self.publish(self.registry.apply(msg.up, msg.down))
            elif isinstance(msg, SnapshotRequest):
                snap = self.registry.snapshot()
                if self.before_snapshot is not None:
                    self.before_snapshot()
                await self.router.send_multipart([*envelope, encode(snap)])
            await self.received.put((loop.time(), msg))

    async def next_of(self, kind: type[Any]) -> tuple[float, Any]:
        async with asyncio.timeout(WAIT):
            while True:
                stamp, msg = await self.received.get()
                if isinstance(msg, kind):
                    return stamp, msg

    def close(self) -> None:
        self.router.close(linger=0)
        self.pub.close(linger=0)
        self.ctx.term()


@pytest.fixture
def rundir() -> Iterator[Path]:
    # ipc:// paths must fit sun_path (108 bytes): keep the directory short.
    path = Path(tempfile.mkdtemp(prefix="bb-"))
    path.chmod(0o700)
    yield path
    shutil.rmtree(path)


def spec_for(broker: Broker, *, index: int = 1, heartbeat: float = 1.0) -> WorkerSpec:
    return WorkerSpec(
        index=index,
        count=2,
        generation=7,
        plans=b"",
        source=None,
        listeners=[],
        inbox_fd=-1,
        outbox_fds={},
        registry_endpoint=broker.registry_endpoint,
        updates_endpoint=broker.updates_endpoint,
        lifeline_fd=0,
        runtime_dir="/nonexistent",
        heartbeat_interval=heartbeat,
    )


Scenario = Callable[[Broker, BusClient, asyncio.Event], Coroutine[Any, Any, None]]


def run(rundir: Path, scenario: Scenario, *, heartbeat: float = 1.0) -> None:
    async def main() -> None:
        broker = Broker(rundir)
        server = asyncio.create_task(broker.serve(), name="broker")
        changed = asyncio.Event()
        client = BusClient(spec_for(broker, heartbeat=heartbeat), on_change=changed.set)
        try:
            await scenario(broker, client, changed)
        finally:
            async with asyncio.timeout(WAIT):
                await client.close()
            server.cancel()
            await asyncio.wait([server], timeout=WAIT)
            broker.close()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())


async def until(pred: Callable[[], bool], changed: asyncio.Event) -> None:
    async with asyncio.timeout(WAIT):
        while not pred():
            changed.clear()
            await changed.wait()


def view_ids(client: BusClient) -> set[str]:
    return {c.connector_id for c in client.view.all()}


def test_start_says_hello_and_loads_the_snapshot(rundir: Path) -> None:
    async def scenario(broker: Broker, client: BusClient, changed: asyncio.Event) -> None:
        broker.registry.up(info("existing", worker=0))
        await client.start(timeout=WAIT)
        assert client.view.synced and view_ids(client) == {"existing"}
        _, hello = await broker.next_of(Hello)
        assert (hello.index, hello.generation) == (1, 7)
        _, req = await broker.next_of(SnapshotRequest)
        assert req.index == 1

    run(rundir, scenario)


def test_delta_after_start_reaches_the_view(rundir: Path) -> None:
    async def scenario(broker: Broker, client: BusClient, changed: asyncio.Event) -> None:
        await client.start(timeout=WAIT)
        broker.publish(broker.registry.up(info("new")))
        await until(lambda: view_ids(client) == {"new"}, changed)
        broker.publish(broker.registry.down(TID, "new"))
        await until(lambda: view_ids(client) == set(), changed)
        assert client.view.seq == 2

    run(rundir, scenario)


def test_gap_triggers_a_new_snapshot_request(rundir: Path) -> None:
    async def scenario(broker: Broker, client: BusClient, changed: asyncio.Event) -> None:
        await client.start(timeout=WAIT)
        await broker.next_of(SnapshotRequest)
        broker.registry.up(info("lost"))  # seq 1 never published
        broker.publish(broker.registry.up(info("seen")))  # seq 2: a gap
        await broker.next_of(SnapshotRequest)
        await until(lambda: client.view.synced and view_ids(client) == {"lost", "seen"}, changed)

    run(rundir, scenario)


def test_delta_racing_the_snapshot_is_not_lost(rundir: Path) -> None:
    async def scenario(broker: Broker, client: BusClient, changed: asyncio.Event) -> None:
        broker.registry.up(info("a"))
        # Published after the snapshot was taken but (usually) received before it.
        broker.before_snapshot = lambda: broker.publish(broker.registry.up(info("b")))
        await client.start(timeout=WAIT)
        broker.before_snapshot = None
        await until(lambda: view_ids(client) == {"a", "b"}, changed)
        assert client.view.seq == 2

    run(rundir, scenario)


def test_ready_and_connector_up_round_trip_through_the_registry(rundir: Path) -> None:
    async def scenario(broker: Broker, client: BusClient, changed: asyncio.Event) -> None:
        await client.start(timeout=WAIT)
        client.connector_up(info("mine"))
        client.ready()
        _, up = await broker.next_of(ConnectorBatch)
        assert [i.connector_id for i in up.up] == ["mine"] and up.down == []
        _, ready = await broker.next_of(Ready)
        assert ready.index == 1
        await until(lambda: view_ids(client) == {"mine"}, changed)

    run(rundir, scenario)


def test_a_burst_of_connector_changes_goes_out_as_few_batches_in_order(rundir: Path) -> None:
    """2,500 registrations in one loop turn: 3 batches (MAX_BATCH 1,024), sent before the
    message that followed them; a connector that came and went in the burst is never sent."""

    async def scenario(broker: Broker, client: BusClient, changed: asyncio.Event) -> None:
        await client.start(timeout=WAIT)
        client.connector_up(info("early"))
        await broker.next_of(ConnectorBatch)
        for i in range(2500):
            client.connector_up(info(f"c{i}"))
        client.connector_up(info("flash"))
        client.connector_down(TID, "flash")
        client.connector_down(TID, "early")
        client.ready()  # flushes what is queued first
        batches = []
        while sum(len(b.up) for b in batches) < 2500:
            batches.append((await broker.next_of(ConnectorBatch))[1])
        _, ready = await broker.next_of(Ready)
        assert len(batches) == 3 and ready.index == 1
        assert [i.connector_id for b in batches for i in b.up] == [f"c{i}" for i in range(2500)]
        assert [tuple(k) for b in batches for k in b.down] == [(TID, "early")]
        want = {f"c{i}" for i in range(2500)}
        await until(lambda: view_ids(client) == want, changed)
        assert client.view.seq == 4  # "early", then one Delta per batch

    run(rundir, scenario)


def test_heartbeats_arrive_at_the_configured_interval(rundir: Path) -> None:
    interval = 0.05

    async def scenario(broker: Broker, client: BusClient, changed: asyncio.Event) -> None:
        await client.start(timeout=WAIT)
        stamps = []
        for _ in range(8):
            stamp, beat = await broker.next_of(Heartbeat)
            assert beat.index == 1 and beat.now > 0
            stamps.append(stamp)
        gaps = [b - a for a, b in itertools.pairwise(stamps)]
        assert interval * 0.5 < statistics.median(gaps) < interval * 3, gaps

    run(rundir, scenario, heartbeat=interval)


def test_start_times_out_without_a_registry(rundir: Path) -> None:
    async def main() -> None:
        spec = WorkerSpec(
            index=0,
            count=1,
            generation=0,
            plans=b"",
            source=None,
            listeners=[],
            inbox_fd=-1,
            outbox_fds={},
            registry_endpoint=f"ipc://{rundir}/nobody-r",
            updates_endpoint=f"ipc://{rundir}/nobody-u",
            lifeline_fd=0,
            runtime_dir=str(rundir),
        )
        client = BusClient(spec)
        with pytest.raises(TimeoutError):
            await client.start(timeout=0.3)
        async with asyncio.timeout(WAIT):
            await client.close()
            await client.close()
        with pytest.raises(RuntimeError):
            client.ready()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())
