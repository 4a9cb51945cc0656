"""Retries through delay queues, and the inbox absorbing duplicate deliveries."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from bus import BusConfig, BusConnection, HandlerContext, ServiceBus
from contracts import Envelope, Event
from contracts.registry import event
from devkit.bus_testing import Probe, eventually
from kit.transactions import Conflict

pytestmark = pytest.mark.integration


@event("test")
class BusRetryPing(Event):
    key: str


@event("test")
class BusConflictPing(Event):
    key: str


@event("test")
class BusInboxPing(Event):
    key: str


@event("test")
class BusInboxPong(Event):
    key: str


async def test_handler_failing_twice_succeeds_on_third_attempt_and_changes_state_once(
    make_config: Callable[..., BusConfig],
    mongo_client: AsyncMongoClient[Any],
    db: AsyncDatabase[Any],
    connection: BusConnection,
) -> None:
    config = make_config()
    seen: list[int] = []
    committed: list[int] = []

    async def count_flaky_ping(envelope: Envelope[BusRetryPing], ctx: HandlerContext) -> None:
        seen.append(ctx.attempt)
        attempt = ctx.attempt
        ctx.after_commit(lambda: committed.append(attempt))
        await db.state.update_one(
            {"_id": envelope.data.key}, {"$inc": {"n": 1}}, upsert=True, session=ctx.session
        )
        if ctx.attempt < 3:
            raise RuntimeError(f"flaky on attempt {ctx.attempt}")

    bus = ServiceBus(
        config, {BusRetryPing: [count_flaky_ping]}, mongo_client, db, connection=connection
    )
    await bus.start()
    try:
        await bus.publisher.publish(Envelope.wrap(BusRetryPing(key="k1"), correlation_id="c1"))
        await eventually(lambda: len(seen) >= 3, what="three deliveries")
        await asyncio.sleep(0.3)  # nothing else may arrive
        assert seen == [1, 2, 3]
        assert committed == [3]  # the aborted attempts' hooks are never called
        assert await db.state.find_one({"_id": "k1"}) == {"_id": "k1", "n": 1}
        assert await db.inbox.count_documents({}) == 1
    finally:
        await bus.stop()


async def test_a_handler_losing_races_is_retried_past_the_poison_limit(
    make_config: Callable[..., BusConfig],
    mongo_client: AsyncMongoClient[Any],
    db: AsyncDatabase[Any],
    connection: BusConnection,
) -> None:
    # Two attempts for poison; a write conflict or a lost version race is not poison.
    config = make_config(retry_delays=(0.05,), max_attempts=2, retryable_attempts=6)
    seen: list[int] = []

    async def record_contended_ping(
        envelope: Envelope[BusConflictPing], ctx: HandlerContext
    ) -> None:
        seen.append(ctx.attempt)
        if ctx.attempt < 5:
            # (A Mongo write conflict is retried inside the transaction first; once those
            # retries are spent it reaches the consumer like this and counts the same way.)
            raise Conflict("the document moved on")
        await db.state.insert_one({"_id": envelope.data.key}, session=ctx.session)

    bus = ServiceBus(
        config, {BusConflictPing: [record_contended_ping]}, mongo_client, db, connection=connection
    )
    await bus.start()
    try:
        await bus.publisher.publish(Envelope.wrap(BusConflictPing(key="k1"), correlation_id="c1"))
        await eventually(lambda: len(seen) >= 5, what="five deliveries")
        await eventually(
            lambda: db.state.find_one({"_id": "k1"}), what="handled on the fifth delivery"
        )
        assert seen == [1, 2, 3, 4, 5]
    finally:
        await bus.stop()


async def test_same_event_three_times_changes_state_once_and_emits_once(
    make_config: Callable[..., BusConfig],
    mongo_client: AsyncMongoClient[Any],
    db: AsyncDatabase[Any],
    connection: BusConnection,
) -> None:
    config = make_config()
    handled = 0

    async def record_ping_and_answer(envelope: Envelope[BusInboxPing], ctx: HandlerContext) -> None:
        nonlocal handled
        handled += 1
        await db.state.update_one(
            {"_id": envelope.data.key}, {"$inc": {"n": 1}}, upsert=True, session=ctx.session
        )
        await ctx.emit(BusInboxPong(key=envelope.data.key))

    bus = ServiceBus(
        config, {BusInboxPing: [record_ping_and_answer]}, mongo_client, db, connection=connection
    )
    probe_channel = await connection.channel()
    probe = await Probe.bind(probe_channel, config, BusInboxPong.ROUTING_KEY)
    await bus.start()
    try:
        envelope = Envelope.wrap(BusInboxPing(key="dup"), correlation_id="c2")
        for _ in range(3):
            await bus.publisher.publish(envelope)
        await eventually(lambda: len(probe.messages) >= 1, what="the emitted pong")
        assert handled >= 1
        await asyncio.sleep(0.5)  # let the duplicates (and any duplicate pong) arrive
        assert await db.state.find_one({"_id": "dup"}) == {"_id": "dup", "n": 1}
        assert await db.outbox.count_documents({}) == 1

        async def marked() -> bool:  # marks are batched (relay_mark_interval)
            return await db.outbox.count_documents({"status": "sent"}) == 1

        await eventually(marked, what="the pong marked sent")
        assert len(probe.messages) == 1
        pong = Envelope.from_json(probe.messages[0].body)
        assert isinstance(pong.data, BusInboxPong)
        assert pong.causation_id == envelope.id
        assert pong.correlation_id == "c2"
    finally:
        await bus.stop()
        await probe_channel.close()


async def test_service_without_handlers_still_declares_its_queue(
    make_config: Callable[..., BusConfig],
    mongo_client: AsyncMongoClient[Any],
    db: AsyncDatabase[Any],
    connection: BusConnection,
) -> None:
    config = make_config()
    bus = ServiceBus(config, {}, mongo_client, db, connection=connection)
    await bus.start()
    try:
        await eventually(bus.ready, what="readiness")
        raw = await (await connection.channel()).get_underlay_channel()
        declared = await raw.queue_declare(bus.consumer.names.queue, passive=True)
        assert declared.message_count == 0
        await raw.close()
    finally:
        await bus.stop()
    assert not bus.ready()


async def test_catch_all_handler_binds_everything_and_sees_every_event_type(
    make_config: Callable[..., BusConfig],
    mongo_client: AsyncMongoClient[Any],
    db: AsyncDatabase[Any],
    connection: BusConnection,
) -> None:
    config = make_config()
    stored: set[str] = set()

    async def store_raw_event(envelope: Envelope[Any], ctx: HandlerContext) -> None:
        stored.add(envelope.type)

    bus = ServiceBus(config, {Event: [store_raw_event]}, mongo_client, db, connection=connection)
    await bus.start()
    try:
        await bus.publisher.publish(Envelope.wrap(BusInboxPing(key="a"), correlation_id="c"))
        await bus.publisher.publish(Envelope.wrap(BusInboxPong(key="b"), correlation_id="c"))
        await eventually(lambda: stored == {"BusInboxPing", "BusInboxPong"}, what="both types")
    finally:
        await bus.stop()
