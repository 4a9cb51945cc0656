"""The outbox and its relay: committed events are published, aborted ones never are."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import pytest
from aio_pika.abc import AbstractChannel
from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from bus import AmqpPublisher, BusConfig, BusConnection, Outbox, OutboxRelay, PublishFailed
from contracts import Envelope, Event
from contracts.registry import event
from devkit.bus_testing import Probe, eventually
from kit.transactions import run_in_transaction

pytestmark = pytest.mark.integration


@event("test")
class BusOutboxPing(Event):
    n: int


def pings(count: int, start: int = 0) -> list[Envelope[BusOutboxPing]]:
    return [
        Envelope.wrap(BusOutboxPing(n=i), correlation_id="outbox")
        for i in range(start, start + count)
    ]


async def commit(client: AsyncMongoClient[Any], outbox: Outbox, *envelopes: Envelope[Any]) -> None:
    async def body(session: AsyncClientSession) -> None:
        await outbox.add(session, *envelopes)

    await run_in_transaction(client, body)


@pytest.fixture
async def channel(connection: BusConnection) -> AsyncIterator[AbstractChannel]:
    ch = await connection.channel()
    yield ch
    await ch.close()


class StuckPublisher:
    """Claims are made, then publishing never finishes (a relay about to crash)."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()

    async def publish_raw(
        self,
        routing_key: str,
        body: bytes,
        *,
        message_id: str,
        type_: str,
        correlation_id: str | None,
        headers: Mapping[str, Any] | None = None,
    ) -> None:
        self.entered.set()
        await asyncio.Event().wait()


async def test_relay_cancelled_after_commit_and_before_publishing_loses_nothing(
    make_config: Callable[..., BusConfig],
    mongo_client: AsyncMongoClient[Any],
    db: AsyncDatabase[Any],
    connection: BusConnection,
    channel: AbstractChannel,
) -> None:
    config = make_config(lease_seconds=1.0)
    outbox = Outbox(db)
    await outbox.ensure_indexes()
    probe = await Probe.bind(channel, config, BusOutboxPing.ROUTING_KEY)
    publisher = AmqpPublisher(connection, config)

    # 1. The relay is down while the transaction commits.
    idle = OutboxRelay(db, publisher, config)
    idle.start()
    await idle.stop()
    first = pings(3)
    await commit(mongo_client, outbox, *first)
    await asyncio.sleep(0.2)
    assert probe.messages == []

    # 2. A relay is cancelled in the middle of publishing: it hands its claims back.
    stuck_publisher = StuckPublisher()
    stuck = OutboxRelay(db, stuck_publisher, config)
    stuck.start()
    await asyncio.wait_for(stuck_publisher.entered.wait(), 5)
    await stuck.stop()

    # 3. A relay dies without a word after claiming: its lease expires, another one takes over.
    second = pings(2, start=3)
    await commit(mongo_client, outbox, *second)
    crashed = OutboxRelay(db, StuckPublisher(), config)
    claimed = await crashed._claim()
    assert {row["_id"] for row in claimed} == {e.id for e in first + second}

    fresh = OutboxRelay(db, publisher, config)
    fresh.start()
    try:
        await eventually(lambda: len(probe.messages) >= 5, what="every committed event")
        await asyncio.sleep(0.2)
        assert sorted(probe.ids, key=str) == sorted((e.id for e in first + second), key=str)
        await eventually(lambda: _all_sent(db, 5), what="the five rows marked sent")
    finally:
        await fresh.stop()
        await publisher.close()


async def test_aborted_transaction_never_publishes_its_event(
    make_config: Callable[..., BusConfig],
    mongo_client: AsyncMongoClient[Any],
    db: AsyncDatabase[Any],
    connection: BusConnection,
    channel: AbstractChannel,
) -> None:
    config = make_config()
    outbox = Outbox(db)
    probe = await Probe.bind(channel, config, BusOutboxPing.ROUTING_KEY)
    publisher = AmqpPublisher(connection, config)
    relay = OutboxRelay(db, publisher, config)
    doomed, kept = pings(2)

    async def add_then_fail(session: AsyncClientSession) -> None:
        await outbox.add(session, doomed)
        raise LookupError("business rule says no")

    with pytest.raises(LookupError):
        await run_in_transaction(mongo_client, add_then_fail)
    await commit(mongo_client, outbox, kept)

    assert await relay.publish_pending_once() == 1
    assert await relay.publish_pending_once() == 0
    await eventually(lambda: len(probe.messages) == 1, what="the committed event")
    await asyncio.sleep(0.2)
    assert probe.ids == [kept.id]
    assert await db.outbox.find_one({"_id": doomed.id}) is None
    await publisher.close()


async def test_two_relays_publish_fifty_rows_each_exactly_once(
    make_config: Callable[..., BusConfig],
    mongo_client: AsyncMongoClient[Any],
    db: AsyncDatabase[Any],
    connection: BusConnection,
    channel: AbstractChannel,
) -> None:
    config = make_config(relay_batch_size=5)
    outbox = Outbox(db)
    await outbox.ensure_indexes()
    probe = await Probe.bind(channel, config, BusOutboxPing.ROUTING_KEY)
    envelopes = pings(50)
    for i in range(0, 50, 10):
        await commit(mongo_client, outbox, *envelopes[i : i + 10])

    publishers = [AmqpPublisher(connection, config) for _ in range(2)]
    relays = [OutboxRelay(db, p, config) for p in publishers]
    marked: Counter[str] = Counter()

    async def drain(relay: OutboxRelay) -> None:
        idle_passes = 0
        while idle_passes < 3:
            count = await relay.publish_pending_once()
            marked[relay.owner] += count
            idle_passes = idle_passes + 1 if count == 0 else 0
            await asyncio.sleep(0)

    await asyncio.gather(*(drain(r) for r in relays))
    await eventually(lambda: len(probe.messages) >= 50, what="fifty messages")
    await asyncio.sleep(0.3)

    assert sum(marked.values()) == 50
    assert len(probe.messages) == 50
    assert set(probe.ids) == {e.id for e in envelopes}
    rows = await db.outbox.find({}).to_list()
    assert {row["status"] for row in rows} == {"sent"}
    assert {row["attempts"] for row in rows} == {1}  # each row was claimed exactly once
    assert {row["lease_owner"] for row in rows} <= {r.owner for r in relays}
    for p in publishers:
        await p.close()


class FlakyPublisher:
    """Fails each publish with the given errors, in order, then records successes."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.sent: list[str] = []

    async def publish_raw(
        self,
        routing_key: str,
        body: bytes,
        *,
        message_id: str,
        type_: str,
        correlation_id: str | None,
        headers: Mapping[str, Any] | None = None,
    ) -> None:
        if self.errors:
            raise self.errors.pop(0)
        self.sent.append(message_id)


async def test_refused_publish_waits_for_the_lease_and_lost_connection_releases_at_once(
    make_config: Callable[..., BusConfig],
    mongo_client: AsyncMongoClient[Any],
    db: AsyncDatabase[Any],
) -> None:
    config = make_config(lease_seconds=0.5)
    outbox = Outbox(db)
    refused, other = pings(2)
    await commit(mongo_client, outbox, refused, other)

    # The broker nacks the first row: it stays leased, the rest of the batch goes on.
    publisher = FlakyPublisher(PublishFailed("nack"))
    relay = OutboxRelay(db, publisher, config)
    assert await relay.publish_pending_once() == 1
    assert publisher.sent == [other.id]
    assert await relay.publish_pending_once() == 0  # still leased
    await asyncio.sleep(0.6)
    assert await relay.publish_pending_once() == 1
    row = await db.outbox.find_one({"_id": refused.id})
    assert row is not None and row["status"] == "sent" and row["attempts"] == 2

    # The connection drops mid-batch: the unconfirmed rows are handed back immediately.
    third, fourth = pings(2, start=10)
    await commit(mongo_client, outbox, third, fourth)
    broken = FlakyPublisher(ConnectionResetError("link lost"))
    with pytest.raises(ConnectionResetError):
        await OutboxRelay(db, broken, config).publish_pending_once()
    pending = await db.outbox.find({"status": "pending"}).to_list()
    assert {r["_id"] for r in pending} == {third.id, fourth.id}
    assert {r["lease_until"] for r in pending} == {None}
    assert await relay.publish_pending_once() == 2


async def test_rows_born_leased_go_out_without_a_claim_and_outlive_their_relay(
    make_config: Callable[..., BusConfig],
    mongo_client: AsyncMongoClient[Any],
    db: AsyncDatabase[Any],
) -> None:
    config = make_config(lease_seconds=0.5)
    mine_publisher = FlakyPublisher()
    mine = OutboxRelay(db, mine_publisher, config)
    other_publisher = FlakyPublisher()
    other = OutboxRelay(db, other_publisher, config)
    owned = Outbox(
        db, owner=mine.owner, hand_over=mine.hand_over, lease_seconds=config.lease_seconds
    )
    first, second = pings(2)
    await commit(mongo_client, owned, first, second)

    # Another relay leaves them alone while the lease lasts; their own relay got them in memory
    # at the commit and sends them as they are (never claimed: attempts stays 0).
    assert await other.publish_pending_once() == 0
    assert await mine.publish_pending_once() == 2
    assert mine_publisher.sent == [first.id, second.id]
    rows = await db.outbox.find({"_id": {"$in": [first.id, second.id]}}).to_list()
    assert {(r["status"], r["attempts"]) for r in rows} == {("sent", 0)}

    # An aborted transaction hands nothing over.
    (doomed,) = pings(1, start=3)

    async def add_then_fail(session: AsyncClientSession) -> None:
        await owned.add(session, doomed)
        raise LookupError("business rule says no")

    with pytest.raises(LookupError):
        await run_in_transaction(mongo_client, add_then_fail)
    assert await mine.publish_pending_once() == 0
    assert doomed.id not in mine_publisher.sent

    # Their relay died before sending: once the lease runs out, any relay claims them.
    (orphan,) = pings(1, start=5)
    await commit(mongo_client, owned, orphan)
    assert await other.publish_pending_once() == 0
    await asyncio.sleep(0.6)
    assert await other.publish_pending_once() == 1
    assert other_publisher.sent == [orphan.id]
    row = await db.outbox.find_one({"_id": orphan.id})
    assert row is not None and row["status"] == "sent" and row["lease_owner"] == other.owner


async def test_running_relay_marks_many_commits_sent_with_one_update(
    make_config: Callable[..., BusConfig],
    mongo_client: AsyncMongoClient[Any],
    db: AsyncDatabase[Any],
) -> None:
    config = make_config(relay_mark_interval=1.0)
    publisher = FlakyPublisher()
    relay = OutboxRelay(db, publisher, config)
    owned = Outbox(db, owner=relay.owner, hand_over=relay.hand_over, lease_seconds=5.0)
    envelopes = pings(3)
    relay.start()
    try:
        for envelope in envelopes:  # three transactions, each published right after its commit
            await commit(mongo_client, owned, envelope)
        await eventually(lambda: len(publisher.sent) == 3, what="three publishes")
        # Published at once, marked later: the rows are still pending for a moment …
        assert await db.outbox.count_documents({"status": "pending"}) == 3
        await eventually(lambda: _all_sent(db, 3), what="the three rows marked sent", timeout=5.0)
    finally:
        await relay.stop()
    # … then one update marked all three (one timestamp).
    rows = await db.outbox.find({}).to_list()
    assert len({r["sent_at"] for r in rows}) == 1
    assert publisher.sent == [e.id for e in envelopes]


async def _all_sent(db: AsyncDatabase[Any], count: int) -> bool:
    return await db.outbox.count_documents({"status": "sent"}) == count


async def test_stopping_relay_marks_what_it_published(
    make_config: Callable[..., BusConfig],
    mongo_client: AsyncMongoClient[Any],
    db: AsyncDatabase[Any],
) -> None:
    config = make_config(relay_mark_interval=4.0)
    publisher = FlakyPublisher()
    relay = OutboxRelay(db, publisher, config)
    owned = Outbox(db, owner=relay.owner, hand_over=relay.hand_over, lease_seconds=5.0)
    (envelope,) = pings(1)
    relay.start()
    await commit(mongo_client, owned, envelope)
    await eventually(lambda: publisher.sent == [envelope.id], what="the publish")
    await relay.stop()
    row = await db.outbox.find_one({"_id": envelope.id})
    assert row is not None and row["status"] == "sent"
