"""Analytics consumes in batches (bus.batch): a burst against the real broker and Mongo.

A burst of events, some delivered twice, with a poison event (its order's stored fact is
corrupt: folding it raises) and an unparseable message among them: every good event is recorded
once, the projections are what handling the events one at a time gives, the poison event and
the unparseable message end in the DLQ while their neighbours are recorded, and no delivery is
left unacked.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
import structlog
from analytics_service.deps import Deps
from analytics_service.handlers import record_events
from prometheus_client import REGISTRY
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from structlog.testing import capture_logs

from bus import InMemoryBus, Names, list_dead_letters
from bus.batch import BatchContext
from bus.testing import eventually
from contracts import SYSTEM, Actor, Envelope, Event
from contracts.analytics import PromotionGranted
from contracts.gateway import AccessDenied
from contracts.inventory import ProductCreated, StockAdjusted, StockPartiallyReserved
from contracts.order import OrderConfirmed, OrderPlaced, PromotionRedeemed
from contracts.payment import PaymentAuthorized
from contracts.types import Line, MissingLine, PricedLine
from contracts.user import UserLoggedIn, UserRegistered
from kit.transactions import run_in_transaction

if TYPE_CHECKING:
    from conftest import AnalyticsHarness

pytestmark = pytest.mark.integration

HANDLER = "analytics_service.handlers.record_events"


def env(event: Event, correlation: str, actor: Actor = SYSTEM) -> Envelope[Event]:
    return Envelope.wrap(event, correlation_id=correlation, actor=actor)


def lines(product_id: str, quantity: int) -> tuple[PricedLine, ...]:
    return (PricedLine(product_id=product_id, quantity=quantity, price_cents=700),)


def order_events(order_id: str, user_id: str, product_id: str) -> list[Envelope[Event]]:
    items = lines(product_id, 2)
    return [
        env(
            OrderPlaced(
                order_id=order_id,
                user_id=user_id,
                items=items,
                total_cents=1400,
                address_id="a",
                payment_method_id="pm",
            ),
            order_id,
            Actor(user_id=user_id, role="Customer"),
        ),
        env(
            PaymentAuthorized(
                order_id=order_id,
                user_id=user_id,
                payment_id=f"pay-{order_id}",
                amount_cents=1400,
                attempts=1,
            ),
            order_id,
        ),
        env(
            OrderConfirmed(
                order_id=order_id,
                user_id=user_id,
                items=items,
                total_cents=1400,
                payment_method_id="pm",
            ),
            order_id,
        ),
    ]


def burst() -> list[Envelope[Event]]:
    """Catalogue, users, orders (u0's third confirmation earns a grant), stock news, audit-only
    events: about sixty events."""
    out: list[Envelope[Event]] = []
    for n in range(4):
        product = ProductCreated(product_id=f"p{n}", name=f"P{n}", category="c", price_cents=700)
        out.append(env(product, f"p{n}"))
    for n in range(3):
        user = f"u{n}"
        out.append(env(UserRegistered(user_id=user, username=user, email=f"{user}@x.io"), user))
        out.append(env(UserLoggedIn(user_id=user), user))
    for n in range(4):
        out += order_events(f"o{n}", "u0", f"p{n % 4}")
    for n in range(4, 8):
        out += order_events(f"o{n}", f"u{1 + n % 2}", f"p{n % 4}")
    out.append(
        env(
            StockPartiallyReserved(
                order_id="o9",
                user_id="u1",
                reserved=(Line(product_id="p1", quantity=1),),
                missing=(MissingLine(product_id="p2", requested=3, available=1),),
                expires_at=datetime.now(UTC) + timedelta(minutes=5),
            ),
            "o9",
        )
    )
    out.append(env(StockAdjusted(product_id="p3", delta=-1, reason="count", available=8), "p3"))
    out.append(env(PromotionRedeemed(user_id="u1", code="WELCOME", order_id="o5"), "o5"))
    for n in range(10):
        denied = AccessDenied(method="GET", path=f"/x/{n}", required_roles=("Admin",))
        out.append(env(denied, f"r{n}", Actor(user_id="u2", role="Customer")))
    return out


async def one_at_a_time(
    deps: Deps, db: AsyncDatabase[Any], envelopes: list[Envelope[Event]]
) -> InMemoryBus:
    """The reference: each event in a transaction of its own, in delivery order, in `db`."""
    outbox = InMemoryBus()
    reference = replace(deps, db=db)
    for envelope in envelopes:

        async def body(session: AsyncClientSession, envelope: Envelope[Event] = envelope) -> None:
            ctx = BatchContext(
                session=session,
                db=db,
                log=structlog.get_logger("reference"),
                outbox=outbox,
                deps=reference,
            )
            await record_events([envelope], ctx)

        await run_in_transaction(deps.mongo, body)
    return outbox


async def rows(db: AsyncDatabase[Any], collection: str) -> list[dict[str, Any]]:
    return [row async for row in db[collection].find({}).sort("_id", 1)]


def transactions() -> float:
    value = REGISTRY.get_sample_value(
        "shop_event_handler_duration_seconds_count", {"service": "analytics", "handler": HANDLER}
    )
    return value or 0.0


async def test_a_burst_with_duplicates_and_poison_is_recorded_once_as_one_at_a_time_would(
    analytics: AnalyticsHarness,
) -> None:
    h = analytics
    store = h.deps.store
    corrupt = {"_id": "o-bad", "placed_at": "not a date", "status": "PENDING"}
    await store.order_facts.insert_one(corrupt)
    poison = env(
        PaymentAuthorized(
            order_id="o-bad", user_id="u0", payment_id="pay-bad", amount_cents=1, attempts=1
        ),
        "o-bad",
    )
    good = burst()
    middle = len(good) // 2
    # Each of the first ten delivered twice in a row (in one batch), five more again at the end
    # (in the next batch: batches of 50), the poison one in the middle of the burst.
    sent = [e for e in good[:10] for _ in (1, 2)] + good[10:middle]
    sent += [poison, *good[middle:], *good[20:25]]

    # Queued before the consumer starts: batches are cut by size (50), so the poison event is
    # in a batch with others whatever the timing of the publishes.
    consumer = h.deps.bus.consumer  # type: ignore[attr-defined]
    await consumer.stop()
    for envelope in sent[: len(sent) // 2 + 3]:
        await h.publish(envelope)
    await h.publisher.publish_raw(
        OrderPlaced.ROUTING_KEY,
        b"{not an envelope",
        message_id="garbled",
        type_="OrderPlaced",
        correlation_id="x",
    )
    for envelope in sent[len(sent) // 2 + 3 :]:
        await h.publish(envelope)

    channel = await h.connection.channel()

    async def all_recorded() -> bool:
        grants = await store.events.count_documents({"type": "PromotionGranted"})
        return await store.events.count_documents({}) == len(good) + grants and grants == 1

    async def dead_letters() -> set[str | None]:
        return {letter.id for letter in await list_dead_letters(channel, h.config)}

    async def both_dead() -> bool:
        return await dead_letters() == {poison.id, "garbled"}

    with capture_logs() as logs:
        await consumer.start()
        await eventually(all_recorded, timeout=30, what="every good event and the grant recorded")
        await eventually(both_dead, timeout=30, what="the poison event and the garbled message")
    # The poison event failed a batch, whose events were then handled one at a time.
    failed = [entry for entry in logs if entry["event"] == "bus.batch_failed"]
    assert len(failed) == 1 and failed[0]["size"] > 1, failed

    # Nothing left unacked: with the consumer stopped, an unacked delivery would be back.
    await consumer.stop()
    await asyncio.sleep(0.3)
    queue = await channel.declare_queue(Names.of(h.config).queue, passive=True)
    assert queue.declaration_result.message_count == 0
    assert await dead_letters() == {poison.id, "garbled"}

    # Each event recorded once; the poison one not at all, the corrupt fact untouched.
    recorded = [r["_id"] for r in await rows(store.db, "events") if r["type"] != "PromotionGranted"]
    assert sorted(recorded) == sorted(e.id for e in good)
    assert await store.order_facts.find_one({"_id": "o-bad"}) == corrupt

    # The projections equal those of the same events handled one at a time.
    reference_db = store.db.client[f"{store.db.name}_ref"]
    try:
        outbox = await one_at_a_time(h.deps, reference_db, good)
        for collection in ("order_facts", "user_facts", "products", "promotions"):
            batched = [r for r in await rows(store.db, collection) if r["_id"] != "o-bad"]
            assert batched == await rows(reference_db, collection), collection
        [granted] = [r for r in await rows(store.db, "events") if r["type"] == "PromotionGranted"]
        [expected] = outbox.of_type(PromotionGranted)
        assert granted["data"]["code"] == expected.data.code
        assert granted["causation_id"] == expected.causation_id  # the 3rd confirmation
    finally:
        await store.db.client.drop_database(reference_db.name)
    await channel.close()


async def test_deliveries_waiting_in_the_queue_go_in_batches_of_max_batch(
    analytics: AnalyticsHarness,
) -> None:
    """120 events queued while the consumer was stopped: batches of 50, 50 and 20 (settings
    default `batch_max`), each one transaction, every event recorded."""
    h = analytics
    assert h.deps.settings.batch_max == 50
    consumer = h.deps.bus.consumer  # type: ignore[attr-defined]
    await consumer.stop()
    logins = [env(UserLoggedIn(user_id=f"u{n}"), "burst") for n in range(120)]
    await h.publish(*logins)
    before = transactions()
    with capture_logs() as logs:
        await consumer.start()

        async def recorded() -> bool:
            return await h.deps.store.events.count_documents({}) == len(logins)

        await eventually(recorded, timeout=30, what="every login recorded")
    sizes = [entry["size"] for entry in logs if entry["event"] == "bus.batch_handled"]
    assert sum(sizes) == 120 and max(sizes) == 50, sizes
    assert transactions() - before == len(sizes) <= 5
    assert await h.deps.store.user_facts.count_documents({}) == 120
