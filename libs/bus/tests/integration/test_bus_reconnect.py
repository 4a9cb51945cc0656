"""The broker drops the connection mid-stream: consumer and relay recover, nothing is lost."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from structlog.testing import capture_logs

from bus import BusConfig, BusConnection, HandlerContext, ServiceBus
from contracts import Envelope, Event
from contracts.registry import event
from devkit.bus_testing import can_drop_connections, drop_connection, eventually

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not can_drop_connections(), reason="needs rabbitmqctl on this machine"),
]


@event("test")
class BusReconnectPing(Event):
    n: int


async def test_connection_dropped_mid_stream_every_message_processed_exactly_once(
    make_config: Callable[..., BusConfig],
    mongo_client: AsyncMongoClient[Any],
    db: AsyncDatabase[Any],
    connection: BusConnection,
) -> None:
    config = make_config()
    total = 80

    async def count_reconnect_ping(
        envelope: Envelope[BusReconnectPing], ctx: HandlerContext
    ) -> None:
        await db.state.update_one(
            {"_id": envelope.data.n}, {"$inc": {"handled": 1}}, upsert=True, session=ctx.session
        )

    held: set[int] = set()
    release = asyncio.Event()

    async def linger(envelope: Envelope[Any]) -> None:
        # The first messages are committed but not acked when the link drops: their acks are
        # lost, the broker redelivers them, and the inbox must absorb the redeliveries.
        if envelope.data.n < 5:
            held.add(envelope.data.n)
            await release.wait()

    bus = ServiceBus(
        config,
        {BusReconnectPing: [count_reconnect_ping]},
        mongo_client,
        db,
        connection=connection,
        on_committed=linger,
    )
    await bus.start()

    async def write(n: int) -> None:
        envelope = Envelope.wrap(BusReconnectPing(n=n), correlation_id="reconnect")

        async def body(session: AsyncClientSession) -> None:
            await bus.outbox.add(session, envelope)

        await bus.write(body)

    async def writer() -> None:
        for n in range(total):
            await write(n)
            await asyncio.sleep(0.01)

    async def all_handled() -> bool:
        return bool(await db.state.count_documents({}) == total)

    try:
        with capture_logs() as logs:
            writing = asyncio.create_task(writer())
            await eventually(lambda: len(held) == 5, what="five deliveries committed, not acked")
            try:
                await drop_connection(connection)
            except LookupError as exc:
                release.set()
                pytest.skip(f"cannot drop the connection here: {exc}")
            release.set()
            await writing  # the rest is written while the link is down and coming back
            await eventually(all_handled, timeout=30, what="every message handled")
            await eventually(bus.ready, what="readiness after reconnect")
            await eventually(lambda: _count(db, {"status": "pending"}, 0), what="outbox drained")
            await asyncio.sleep(0.5)  # late redeliveries of unacked messages would land now
        assert connection.reconnections >= 1
        events = Counter(entry["event"] for entry in logs)
        # The held acks were lost with the old channel; the broker redelivered those messages
        # after the reconnect and the inbox skipped them.
        assert events["bus.duplicate_skipped"] >= 5
        docs = await db.state.find({}).to_list()
        assert sorted(d["_id"] for d in docs) == list(range(total))
        assert {d["handled"] for d in docs} == {1}
    finally:
        await bus.stop()


async def _count(db: AsyncDatabase[Any], query: dict[str, Any], expected: int) -> bool:
    return bool(await db.outbox.count_documents(query) == expected)
