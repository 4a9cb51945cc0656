"""Batch consuming (bus.batch) against the real broker and Mongo.

The batch handler of these tests is what an append-only consumer looks like: a `ledger` row per
event id (its exactly-once record, no inbox) and a projection that would show a second
application (`totals`: `$inc` per key), both written in the batch's transaction.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from pymongo import AsyncMongoClient, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from bus import BusConfig, BusConnection, HandlerContext, Names, ServiceBus, list_dead_letters
from bus.batch import BatchContext, Batching
from contracts import Envelope, Event
from contracts.registry import event
from devkit.bus_testing import Probe, eventually
from kit.transactions import Conflict

pytestmark = pytest.mark.integration


@event("test")
class BusBatchPing(Event):
    key: str
    poison: bool = False
    answer: bool = False


@event("test")
class BusBatchPong(Event):
    key: str


async def never_per_event(envelope: Envelope[Any], ctx: HandlerContext) -> None:
    raise AssertionError("a batching consumer hands its events to the batch handler")


class Ledger:
    """A batch handler: records new events, counts them per key, answers those that ask."""

    def __init__(self, *, poison_breaks: bool = True, conflicts: int = 0) -> None:
        self.calls: list[list[str]] = []  # keys of each call, in order
        self.applied: list[list[str]] = []  # keys applied by each call that returned
        self.poison_breaks = poison_breaks
        self.conflicts = conflicts

    async def __call__(self, envelopes: Sequence[Envelope[Any]], ctx: BatchContext) -> list[str]:
        self.calls.append([e.data.key for e in envelopes])
        if self.poison_breaks and any(e.data.poison for e in envelopes):
            raise ValueError("cannot take a poison ping")
        if self.conflicts:
            self.conflicts -= 1
            raise Conflict("lost a race")
        ids = list({e.id for e in envelopes})
        cursor = ctx.db.ledger.find({"_id": {"$in": ids}}, session=ctx.session)
        seen = {row["_id"] async for row in cursor}
        fresh = []
        for envelope in envelopes:
            if envelope.id not in seen:
                seen.add(envelope.id)
                fresh.append(envelope)
        if fresh:
            rows = [{"_id": e.id, "key": e.data.key} for e in fresh]
            await ctx.db.ledger.insert_many(rows, session=ctx.session)
            counts = Counter(e.data.key for e in fresh)
            await ctx.db.totals.bulk_write(
                [UpdateOne({"_id": k}, {"$inc": {"n": n}}, upsert=True) for k, n in counts.items()],
                session=ctx.session,
            )
            for envelope in fresh:
                if envelope.data.answer:
                    await ctx.emit(envelope, BusBatchPong(key=envelope.data.key))
        self.applied.append([e.data.key for e in fresh])
        return [e.id for e in fresh]


def ping(key: str, **fields: Any) -> Envelope[BusBatchPing]:
    return Envelope.wrap(BusBatchPing(key=key, **fields), correlation_id=f"c-{key}")


async def totals(db: AsyncDatabase[Any]) -> dict[str, int]:
    return {row["_id"]: row["n"] async for row in db.totals.find({})}


async def queued(connection: BusConnection, config: BusConfig) -> int:
    """Messages in the service queue (ready: stop the consumer first to see the unacked)."""
    channel = await connection.channel()
    try:
        queue = await channel.declare_queue(Names.of(config).queue, passive=True)
        count = queue.declaration_result.message_count
        return int(count or 0)
    finally:
        await channel.close()


async def started_with_queued(
    make_config: Callable[..., BusConfig],
    mongo_client: AsyncMongoClient[Any],
    db: AsyncDatabase[Any],
    connection: BusConnection,
    ledger: Ledger,
    envelopes: Sequence[Envelope[Any]],
    *,
    garbled: bool = False,
    max_batch: int = 10,
    **options: Any,
) -> tuple[ServiceBus, BusConfig]:
    """A batching bus whose queue already holds `envelopes` when it starts consuming (so the
    batches are cut by size, not by the timing of the publishes)."""
    config = make_config(**options)
    bus = ServiceBus(
        config,
        {BusBatchPing: [never_per_event]},
        mongo_client,
        db,
        connection=connection,
        batching=Batching(ledger, max_batch=max_batch, max_wait=0.05),
    )
    await bus.start()
    await bus.consumer.stop()
    for n, envelope in enumerate(envelopes):
        if garbled and n == len(envelopes) // 2:
            await bus.publisher.publish_raw(
                BusBatchPing.ROUTING_KEY,
                b"{garbled",
                message_id="garbled",
                type_="BusBatchPing",
                correlation_id="x",
            )
        await bus.publisher.publish(envelope)
    await eventually(
        lambda: _at_least(queued(connection, config), len(envelopes)), what="all queued"
    )
    await bus.consumer.start()
    return bus, config


async def _at_least(value: Any, n: int) -> bool:
    return bool(await value >= n)


async def test_queued_deliveries_go_in_batches_of_max_batch_and_are_all_acked(
    make_config: Callable[..., BusConfig],
    mongo_client: AsyncMongoClient[Any],
    db: AsyncDatabase[Any],
    connection: BusConnection,
) -> None:
    ledger = Ledger()
    pings = [ping(f"k{n % 5}") for n in range(25)]
    twice = [pings[0], pings[0], *pings[1:], pings[3]]  # one twice in a batch, one in another
    bus, config = await started_with_queued(
        make_config, mongo_client, db, connection, ledger, twice
    )
    try:
        await eventually(lambda: sum(map(len, ledger.applied)) == 25, what="every ping applied")
        await asyncio.sleep(0.2)
        assert sum(map(len, ledger.calls)) == len(twice)
        assert max(map(len, ledger.calls)) == 10 and len(ledger.calls) <= 4, ledger.calls
        assert await totals(db) == {f"k{n}": 5 for n in range(5)}  # each applied once
        assert await db.ledger.count_documents({}) == 25
        await bus.consumer.stop()
        await asyncio.sleep(0.2)
        assert await queued(connection, config) == 0  # nothing was left unacked
    finally:
        await bus.stop()


async def test_a_poison_event_fails_its_batch_then_alone_its_neighbours_commit(
    make_config: Callable[..., BusConfig],
    mongo_client: AsyncMongoClient[Any],
    db: AsyncDatabase[Any],
    connection: BusConnection,
) -> None:
    ledger = Ledger()
    poison = ping("bad", poison=True)
    pings = [ping(f"g{n}") for n in range(4)] + [poison] + [ping(f"g{n}") for n in range(4, 9)]
    bus, config = await started_with_queued(
        make_config, mongo_client, db, connection, ledger, pings, garbled=True, max_batch=20
    )
    admin = await connection.channel()
    try:

        async def dead() -> set[str | None]:
            return {letter.id for letter in await list_dead_letters(admin, config)}

        await eventually(
            lambda: _equals(dead(), {poison.id, "garbled"}), what="poison and garbled in the DLQ"
        )
        await eventually(lambda: sum(map(len, ledger.applied)) == 9, what="the neighbours")
        # The whole batch once (the garbled message never reached it), then each alone; the
        # poison's retry copies alone from the start.
        keys = [e.data.key for e in pings]
        assert ledger.calls[0] == keys
        assert ledger.calls[1:11] == [[k] for k in keys]
        assert ledger.calls[11:] == [["bad"], ["bad"]]
        assert await totals(db) == {f"g{n}": 1 for n in range(9)}
        letters = {letter.id: letter for letter in await list_dead_letters(admin, config)}
        assert letters[poison.id].error == "ValueError: cannot take a poison ping"
        assert letters[poison.id].attempts == config.max_attempts == 3
        assert (letters[poison.id].handler or "").endswith("Ledger")
        assert letters["garbled"].error_type == "ContractError" and letters["garbled"].attempts == 1
        await bus.consumer.stop()
        await asyncio.sleep(0.2)
        assert await queued(connection, config) == 0
    finally:
        await bus.stop()
        await admin.close()


async def test_a_transient_failure_sends_the_batch_to_the_delay_queues(
    make_config: Callable[..., BusConfig],
    mongo_client: AsyncMongoClient[Any],
    db: AsyncDatabase[Any],
    connection: BusConnection,
) -> None:
    """Not the events' fault: no event is handled alone in this attempt, all come back later
    (each alone: a retry copy failed before) and are applied once."""
    ledger = Ledger(conflicts=1)
    pings = [ping(f"t{n}") for n in range(4)]
    bus, config = await started_with_queued(
        make_config, mongo_client, db, connection, ledger, pings
    )
    admin = await connection.channel()
    try:
        await eventually(lambda: sum(map(len, ledger.applied)) == 4, what="every ping applied")
        assert ledger.calls[0] == [e.data.key for e in pings]
        assert sorted(ledger.calls[1:]) == [[f"t{n}"] for n in range(4)]
        assert await totals(db) == {f"t{n}": 1 for n in range(4)}
        assert await list_dead_letters(admin, config) == []
    finally:
        await bus.stop()
        await admin.close()


async def test_a_crash_between_commit_and_ack_is_absorbed_by_the_handlers_record(
    make_config: Callable[..., BusConfig],
    mongo_client: AsyncMongoClient[Any],
    db: AsyncDatabase[Any],
    connection: BusConnection,
) -> None:
    """The batch commits, then the process fails before the acks: the deliveries come back,
    the ledger has their ids, nothing is applied twice, and they are acked."""
    ledger = Ledger()
    pings = [ping(f"c{n}") for n in range(6)]
    config = make_config()
    failed: list[str] = []

    async def fail_once_before_ack(envelope: Envelope[Any]) -> None:
        if not failed:
            failed.append(envelope.id)
            raise SystemError("the process dies between commit and ack")

    bus = ServiceBus(
        config,
        {BusBatchPing: [never_per_event]},
        mongo_client,
        db,
        connection=connection,
        on_committed=fail_once_before_ack,
        batching=Batching(ledger, max_batch=10, max_wait=0.2),
    )
    await bus.start()
    try:
        for envelope in pings:
            await bus.publisher.publish(envelope)
        await eventually(lambda: sum(map(len, ledger.calls)) >= 12, what="the redelivery")
        await asyncio.sleep(0.3)
        assert failed
        assert sum(map(len, ledger.applied)) == 6  # the redelivered ones applied nothing
        assert await totals(db) == {f"c{n}": 1 for n in range(6)}
        await bus.consumer.stop()
        await asyncio.sleep(0.2)
        assert await queued(connection, config) == 0
    finally:
        await bus.stop()


async def test_each_delivery_has_its_span_and_what_it_causes_continues_its_trace(
    make_config: Callable[..., BusConfig],
    mongo_client: AsyncMongoClient[Any],
    db: AsyncDatabase[Any],
    connection: BusConnection,
    exporter: InMemorySpanExporter,
) -> None:
    ledger = Ledger()
    config = make_config()
    bus = ServiceBus(
        config,
        {BusBatchPing: [never_per_event]},
        mongo_client,
        db,
        connection=connection,
        batching=Batching(ledger, max_batch=10, max_wait=0.05),
    )
    await bus.start()
    channel = await connection.channel()
    pongs = await Probe.bind(channel, config, BusBatchPong.ROUTING_KEY)
    try:
        await bus.consumer.stop()
        traces: dict[str, int] = {}
        for key in ("a", "b"):
            envelope = ping(key, answer=True)
            with trace.get_tracer("test").start_as_current_span(f"request {key}") as root:
                traces[envelope.id] = root.get_span_context().trace_id
                await bus.publisher.publish(envelope)
        await eventually(lambda: _at_least(queued(connection, config), 2), what="both queued")
        await bus.consumer.start()
        await eventually(lambda: len(pongs.messages) == 2, what="both answers published")
        assert ledger.calls == [["a", "b"]]  # one batch

        for message in pongs.messages:
            answer = json.loads(message.body)
            cause = answer["causationId"]
            traceparent = str((message.headers or {})["traceparent"])
            assert traceparent.split("-")[1] == f"{traces[cause]:032x}", answer["data"]

        def processed() -> dict[str, int]:
            return {
                str((s.attributes or {})["messaging.message.id"]): s.context.trace_id
                for s in exporter.get_finished_spans()
                if s.kind is SpanKind.CONSUMER and s.context is not None
            }

        await eventually(lambda: set(traces) <= set(processed()), what="both process spans")
        assert {i: processed()[i] for i in traces} == traces
        consumed = [
            s.attributes or {} for s in exporter.get_finished_spans() if s.kind is SpanKind.CONSUMER
        ]
        batched = [a for a in consumed if a["messaging.message.id"] in traces]
        assert {a["messaging.batch.message_count"] for a in batched} == {2}
        assert {a["messaging.consumer.group.name"] for a in batched} == {
            f"{config.prefix}{config.service}.events"
        }
    finally:
        await bus.stop()
        await channel.close()


async def _equals(value: Any, expected: Any) -> bool:
    return bool(await value == expected)
