"""The broker itself restarts (`rabbitmqctl stop_app`, then `start_app`) under a running bus.

Not the same as a dropped connection: every connection, channel, consumer and unconfirmed publish
goes, and the bus must come back to the same durable topology on its own. It runs against a
RabbitMQ node of the test's own (`devkit.rabbit_node`): the machine's broker is shared.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from bus import BusConfig, BusConnection, HandlerContext, ServiceBus
from contracts import Envelope, Event
from contracts.registry import event
from devkit import rabbit_node
from devkit.bus_testing import eventually
from devkit.rabbit_node import RabbitNode

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(180),
    pytest.mark.skipif(not rabbit_node.available(), reason="needs rabbitmq-server on this machine"),
]


@event("test")
class BusRestartPing(Event):
    n: int


@pytest.fixture
async def node() -> AsyncIterator[RabbitNode]:
    started = await RabbitNode.start(prefix="shopbustest")
    try:
        yield started
    finally:
        await started.stop()


async def test_broker_restart_bus_reconnects_resumes_and_loses_nothing(
    node: RabbitNode, mongo_client: AsyncMongoClient[Any], db: AsyncDatabase[Any]
) -> None:
    config = BusConfig(
        service=f"bus{secrets.token_hex(3)}",
        amqp_url=node.amqp_url,
        prefix=f"t{secrets.token_hex(3)}.",
        retry_delays=(0.2, 0.5),
        lease_seconds=2.0,
        relay_poll_interval=0.05,
        reconnect_interval=0.3,
    )
    total = 60

    async def count_restart_ping(envelope: Envelope[BusRestartPing], ctx: HandlerContext) -> None:
        await db.state.update_one(
            {"_id": envelope.data.n}, {"$inc": {"handled": 1}}, upsert=True, session=ctx.session
        )

    connection = BusConnection.for_config(config)
    bus = ServiceBus(
        config, {BusRestartPing: [count_restart_ping]}, mongo_client, db, connection=connection
    )
    await bus.start()

    async def write(n: int) -> None:
        envelope = Envelope.wrap(BusRestartPing(n=n), correlation_id="restart")

        async def body(session: AsyncClientSession) -> None:
            await bus.outbox.add(session, envelope)

        await bus.write(body)

    async def handled() -> int:
        return int(await db.state.count_documents({}))

    try:
        for n in range(20):
            await write(n)
        await eventually(lambda: _equals(handled(), 20), timeout=20, what="first 20 handled")
        assert bus.ready()

        await node.stop_app()
        await eventually(lambda: not bus.ready(), timeout=5, what="not ready with the broker down")
        # Written while the broker is down: committed to the outbox, published once it is back.
        for n in range(20, 40):
            await write(n)
        await asyncio.sleep(3)
        assert not bus.ready()
        await node.start_app()

        await eventually(bus.ready, timeout=30, what="ready again after start_app")
        for n in range(40, total):
            await write(n)
        await eventually(lambda: _equals(handled(), total), timeout=30, what="every one handled")
        await eventually(
            lambda: _equals(db.outbox.count_documents({"status": "pending"}), 0),
            timeout=30,
            what="outbox drained",
        )
        await asyncio.sleep(1)  # late redeliveries would land now
        assert connection.reconnections >= 1
        docs = await db.state.find({}).to_list()
        assert sorted(d["_id"] for d in docs) == list(range(total))
        assert {d["handled"] for d in docs} == {1}
    finally:
        await bus.stop()
        await connection.close()


async def _equals(value: Any, expected: int) -> bool:
    return bool(await value == expected)
