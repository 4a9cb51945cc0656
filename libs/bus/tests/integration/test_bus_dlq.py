"""Dead letters: a handler that keeps failing, malformed messages, listing and redriving."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from bus import (
    BusConfig,
    BusConnection,
    HandlerContext,
    ServiceBus,
    dead_letter_count,
    list_dead_letters,
    redrive,
)
from contracts import Envelope, Event
from contracts.registry import event
from devkit.bus_testing import eventually

pytestmark = pytest.mark.integration


@event("test")
class BusDlqPing(Event):
    key: str
    poison: bool = False


@event("test")
class BusMalformedPing(Event):
    key: str
    count: int


async def test_always_failing_message_goes_to_dlq_while_others_flow_then_redrive(
    make_config: Callable[..., BusConfig],
    mongo_client: AsyncMongoClient[Any],
    db: AsyncDatabase[Any],
    connection: BusConnection,
) -> None:
    config = make_config()
    broken = True
    poison_attempts: list[int] = []
    good_done: set[str] = set()  # a set: a transaction body may run twice on conflicts

    async def store_ping(envelope: Envelope[BusDlqPing], ctx: HandlerContext) -> None:
        if envelope.data.poison:
            poison_attempts.append(ctx.attempt)
            if broken:
                raise ValueError(f"cannot handle {envelope.data.key}")
        await db.state.insert_one({"_id": envelope.data.key}, session=ctx.session)
        if not envelope.data.poison:
            good_done.add(envelope.data.key)

    bus = ServiceBus(config, {BusDlqPing: [store_ping]}, mongo_client, db, connection=connection)
    admin = await connection.channel()
    await bus.start()
    try:
        poison = Envelope.wrap(BusDlqPing(key="bad", poison=True), correlation_id="c3")
        await bus.publisher.publish(poison)
        for i in range(5):
            await bus.publisher.publish(
                Envelope.wrap(BusDlqPing(key=f"good{i}"), correlation_id="c3")
            )
        # The good messages do not wait for the poison one's retries.
        await eventually(lambda: len(good_done) == 5, what="good messages")
        assert await dead_letter_count(admin, config) == 0
        assert len(poison_attempts) < config.max_attempts

        await eventually(
            lambda: _equals(dead_letter_count(admin, config), 1), what="the dead letter"
        )
        assert poison_attempts == [1, 2, 3] == list(range(1, config.max_attempts + 1))
        letters = await list_dead_letters(admin, config)
        assert len(letters) == 1
        letter = letters[0]
        assert letter.id == poison.id
        assert letter.type == "BusDlqPing"
        assert letter.error == "ValueError: cannot handle bad"
        assert letter.error_type == "ValueError"
        assert letter.attempts == 3
        assert letter.routing_key == BusDlqPing.ROUTING_KEY
        assert letter.service == config.service
        assert letter.handler is not None and letter.handler.endswith("store_ping")
        assert letter.failed_at is not None
        assert '"poison":true' in letter.body_excerpt
        # Listing leaves the message where it was.
        assert await dead_letter_count(admin, config) == 1
        assert len(await list_dead_letters(admin, config)) == 1

        broken = False
        assert await redrive(admin, config) == 1
        await eventually(
            lambda: _equals(db.state.count_documents({"_id": "bad"}), 1), what="redriven"
        )
        assert poison_attempts[-1] == 1  # the attempt count starts again
        await asyncio.sleep(0.2)
        assert await list_dead_letters(admin, config) == []
        assert await db.state.count_documents({}) == 6
    finally:
        await bus.stop()
        await admin.close()


async def test_malformed_messages_go_to_dlq_at_once_and_the_next_good_one_is_processed(
    make_config: Callable[..., BusConfig],
    mongo_client: AsyncMongoClient[Any],
    db: AsyncDatabase[Any],
    connection: BusConnection,
) -> None:
    config = make_config()
    handled: list[str] = []

    async def count_malformed_ping(
        envelope: Envelope[BusMalformedPing], ctx: HandlerContext
    ) -> None:
        handled.append(envelope.data.key)

    bus = ServiceBus(
        config, {BusMalformedPing: [count_malformed_ping]}, mongo_client, db, connection=connection
    )
    admin = await connection.channel()
    await bus.start()
    try:
        good = Envelope.wrap(BusMalformedPing(key="ok", count=1), correlation_id="c4")
        wire = good.to_wire()
        bodies = {
            "not-json": b"{this is not json",
            "unknown-type": json.dumps({**wire, "id": "u1", "type": "BusNoSuchEvent"}).encode(),
            "invalid-data": json.dumps(
                {**wire, "id": "u2", "data": {"key": "x", "count": "many"}}
            ).encode(),
        }
        for message_id, body in bodies.items():
            await bus.publisher.publish_raw(
                BusMalformedPing.ROUTING_KEY,
                body,
                message_id=message_id,
                type_="BusMalformedPing",
                correlation_id="c4",
            )
        await bus.publisher.publish(good)
        await eventually(lambda: handled == ["ok"], what="the good message")
        await eventually(
            lambda: _equals(dead_letter_count(admin, config), 3), what="three dead letters"
        )
        letters = {letter.id: letter for letter in await list_dead_letters(admin, config)}
        assert set(letters) == set(bodies)
        for letter in letters.values():
            assert letter.error_type == "ContractError"
            assert letter.attempts == 1
            assert letter.handler is None
            assert "x-last-error" not in letter.headers  # never went through a delay queue
        assert "not an envelope" in (letters["not-json"].error or "")
        assert "unknown event type 'BusNoSuchEvent'" in (letters["unknown-type"].error or "")
        assert "invalid BusMalformedPing" in (letters["invalid-data"].error or "")
        assert letters["not-json"].body_excerpt == "{this is not json"
        assert bus.ready()

        # Redriving messages that fail again at once moves each one once and stops.
        assert await redrive(admin, config) == 3
        await eventually(
            lambda: _equals(dead_letter_count(admin, config), 3), what="back in the DLQ"
        )
        assert handled == ["ok"]
    finally:
        await bus.stop()
        await admin.close()


async def _equals(value: Any, expected: Any) -> bool:
    return bool(await value == expected)


@event("test")
class BusBackstopPing(Event):
    key: str


async def test_broker_delivery_limit_dead_letters_a_message_whose_consumer_keeps_dying(
    make_config: Callable[..., BusConfig],
    mongo_client: AsyncMongoClient[Any],
    db: AsyncDatabase[Any],
    connection: BusConnection,
) -> None:
    config = make_config(delivery_limit=2)
    committed: list[str] = []

    async def note_backstop_ping(envelope: Envelope[BusBackstopPing], ctx: HandlerContext) -> None:
        await db.state.insert_one({"_id": envelope.id}, session=ctx.session)

    async def die_before_ack(envelope: Envelope[Any]) -> None:
        committed.append(envelope.id)
        raise SystemError("process dies between commit and ack")

    bus = ServiceBus(
        config,
        {BusBackstopPing: [note_backstop_ping]},
        mongo_client,
        db,
        connection=connection,
        on_committed=die_before_ack,
    )
    admin = await connection.channel()
    await bus.start()
    try:
        envelope = Envelope.wrap(BusBackstopPing(key="k"), correlation_id="c5")
        await bus.publisher.publish(envelope)
        await eventually(
            lambda: _equals(dead_letter_count(admin, config), 1), what="broker dead-lettering"
        )
        assert len(committed) == 3  # first delivery + delivery_limit redeliveries
        assert await db.state.count_documents({}) == 1  # the inbox kept the handler to one run
        [letter] = await list_dead_letters(admin, config)
        assert letter.id == envelope.id
        assert letter.error == "dead-lettered by the broker: delivery_limit"
    finally:
        await bus.stop()
        await admin.close()
