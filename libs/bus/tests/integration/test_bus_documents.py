"""Single-document steps: state, events and the handled id in one write; nothing lost, once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aio_pika.abc import AbstractChannel
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from bus import (
    BusConfig,
    BusConnection,
    HandlerContext,
    ServiceBus,
    deduplicated_by_state,
    document_step,
)
from bus.documents import (
    OUTBOX,
    PROCESSED,
    DocumentOutbox,
    already_processed,
    pending_rows,
    step_update,
)
from contracts import Envelope, Event
from contracts.registry import event
from devkit.bus_testing import Probe, eventually
from kit.transactions import Conflict

pytestmark = pytest.mark.integration

THINGS = "things"


@event("test")
class BusDocPing(Event):
    key: str


@event("test")
class BusDocPong(Event):
    key: str


@document_step
async def count_ping_on_its_document(envelope: Envelope[BusDocPing], ctx: HandlerContext) -> None:
    """The test's document step: count pings on the thing and answer each with a pong."""
    things = ctx.db[THINGS]
    doc = await things.find_one({"_id": envelope.data.key}) or {"_id": envelope.data.key, "n": 0}
    if already_processed(doc, ctx.processed):
        ctx.duplicate = True
        return
    pong = envelope.caused(BusDocPong(key=envelope.data.key))
    rows = pending_rows([pong])
    # Conditional on what was read (n is the version): a concurrent copy of the same delivery
    # loses, runs again (the consumer retries a Conflict) and finds its id processed.
    try:
        result = await things.update_one(
            {"_id": doc["_id"], "n": doc["n"]},
            step_update({"n": doc["n"] + 1}, rows, ctx.processed),
            upsert=doc["n"] == 0,
        )
    except DuplicateKeyError as exc:
        raise Conflict("created concurrently") from exc
    if result.matched_count == 0 and result.upserted_id is None:
        raise Conflict("changed concurrently")
    ctx.documents(THINGS).written(doc["_id"], rows, None)


async def _outbox_empty(db: AsyncDatabase[Any], key: str) -> bool:
    doc = await db[THINGS].find_one({"_id": key})
    return doc is not None and doc.get(OUTBOX) == []


async def test_document_step_writes_once_publishes_once_and_pulls_what_it_sent(
    make_config: Callable[..., BusConfig],
    mongo_client: AsyncMongoClient[Any],
    db: AsyncDatabase[Any],
    connection: BusConnection,
) -> None:
    config = make_config(document_outboxes=(THINGS,), relay_mark_interval=0.2)
    bus = ServiceBus(
        config, {BusDocPing: [count_ping_on_its_document]}, mongo_client, db, connection=connection
    )
    channel = await connection.channel()
    probe = await Probe.bind(channel, config, BusDocPong.ROUTING_KEY)
    await bus.start()
    try:
        envelope = Envelope.wrap(BusDocPing(key="t1"), correlation_id="c1")
        for _ in range(3):
            await bus.publisher.publish(envelope)
        await eventually(lambda: len(probe.messages) >= 1, what="the pong")
        await eventually(lambda: _outbox_empty(db, "t1"), what="the pong pulled from t1")
        await asyncio.sleep(0.3)  # the duplicates arrive and change nothing
        doc = await db[THINGS].find_one({"_id": "t1"})
        assert doc is not None and doc["n"] == 1
        assert len(doc[PROCESSED]) == 1
        assert len(probe.messages) == 1
        pong = Envelope.from_json(probe.messages[0].body)
        assert pong.causation_id == envelope.id
        assert await db.inbox.count_documents({}) == 0  # no inbox row, no outbox row
        assert await db.outbox.count_documents({}) == 0
    finally:
        await bus.stop()
        await channel.close()


async def test_rows_left_in_a_document_by_a_dead_process_go_out_once(
    make_config: Callable[..., BusConfig],
    mongo_client: AsyncMongoClient[Any],
    db: AsyncDatabase[Any],
    connection: BusConnection,
) -> None:
    # A process wrote its step and died before its relay published: nothing handed over.
    config = make_config(
        document_outboxes=(THINGS,), own_lease_seconds=0.5, relay_mark_interval=0.2
    )
    pong = Envelope.wrap(BusDocPong(key="t2"), correlation_id="c2")
    rows = pending_rows([pong], datetime.now(UTC))
    await db[THINGS].insert_one({"_id": "t2", "n": 1, OUTBOX: rows, PROCESSED: ["x|h"]})
    DocumentOutbox(THINGS, None).written("t2", rows, None)  # no relay: stays in the document

    channel: AbstractChannel = await connection.channel()
    probe = await Probe.bind(channel, config, BusDocPong.ROUTING_KEY)
    bus = ServiceBus(config, {}, mongo_client, db, connection=connection)
    await bus.start()
    try:
        # Young rows are their writer's (it may still be alive): only stale ones are claimed.
        await asyncio.sleep(0.2)
        assert probe.messages == []
        await eventually(lambda: len(probe.messages) >= 1, what="the orphaned pong")
        await eventually(lambda: _outbox_empty(db, "t2"), what="the pong pulled from t2")
        await asyncio.sleep(0.3)
        assert [m.message_id for m in probe.messages] == [pong.id]
        doc = await db[THINGS].find_one({"_id": "t2"})
        assert doc is not None and doc["n"] == 1 and doc[PROCESSED] == ["x|h"]
    finally:
        await bus.stop()
        await channel.close()


def test_a_step_update_keeps_a_bounded_list_of_handled_ids() -> None:
    update = step_update({"n": 2}, [], "e1|h")
    assert update == {"$set": {"n": 2}, "$push": {PROCESSED: {"$each": ["e1|h"], "$slice": -64}}}
    assert already_processed({PROCESSED: ["e1|h"]}, "e1|h")
    assert not already_processed({}, "e1|h")
    stale = datetime.now(UTC) - timedelta(days=1)
    (row,) = pending_rows([Envelope.wrap(BusDocPong(key="k"), correlation_id="c")], stale)
    assert row["created_at"] == stale and row["status"] == "pending"


@deduplicated_by_state
async def open_account_once(envelope: Envelope[BusDocPing], ctx: HandlerContext) -> None:
    """Keyed by what it handles: a repeat finds the row and changes (and emits) nothing."""
    if await ctx.db.accounts.find_one({"_id": envelope.data.key}, session=ctx.session):
        return
    await ctx.db.accounts.insert_one({"_id": envelope.data.key}, session=ctx.session)
    await ctx.emit(BusDocPong(key=envelope.data.key))


async def test_a_handler_deduplicated_by_its_state_writes_no_inbox_row_and_acts_once(
    make_config: Callable[..., BusConfig],
    mongo_client: AsyncMongoClient[Any],
    db: AsyncDatabase[Any],
    connection: BusConnection,
) -> None:
    config = make_config(relay_mark_interval=0.2)
    bus = ServiceBus(
        config, {BusDocPing: [open_account_once]}, mongo_client, db, connection=connection
    )
    channel = await connection.channel()
    probe = await Probe.bind(channel, config, BusDocPong.ROUTING_KEY)
    await bus.start()
    try:
        envelope = Envelope.wrap(BusDocPing(key="a1"), correlation_id="c3")
        for _ in range(3):
            await bus.publisher.publish(envelope)
        await eventually(lambda: len(probe.messages) >= 1, what="the pong")
        await asyncio.sleep(0.5)
        assert len(probe.messages) == 1
        assert await db.accounts.count_documents({}) == 1
        assert await db.inbox.count_documents({}) == 0
    finally:
        await bus.stop()
        await channel.close()
