"""The analytics service's commands and handlers, on the embedded store with an in-memory bus.

No broker and no HTTP: `bootstrap(settings, mongo=…, bus=InMemoryBus())` wires the service;
events reach it through `bus.deliver()` (the handler table, one event per transaction) or as a
batch through the batch handler (as `bus.batch.BatchConsumer` gives them), and the tests read
what a Manager or a customer would see: reports, the audit trail, promotions.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import structlog
from analytics_service import commands, handlers
from analytics_service.bootstrap import bootstrap, tidy_legacy
from analytics_service.deps import Deps
from analytics_service.domain import Window
from analytics_service.schemas import SalesReport
from analytics_service.settings import AnalyticsSettings
from analytics_service.store import INDEXES, AuditFilters
from fastapi import FastAPI
from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession

from bus.batch import BatchContext
from bus.fake import InMemoryBus
from contracts import SYSTEM, Actor, Envelope, Event
from contracts.analytics import PromotionGranted
from contracts.inventory import ProductCreated, ProductUpdated
from contracts.order import OrderConfirmed, OrderPlaced
from contracts.payment import PaymentAuthorized, PaymentFailed
from contracts.types import PricedLine
from contracts.user import UserRegistered
from kit.mongo import ensure_indexes

pytestmark = pytest.mark.integration

ADA = Actor(user_id="u1", role="Customer")


@pytest.fixture
async def deps(mongo_client: AsyncMongoClient[Any], db_name: str) -> AsyncIterator[Deps]:
    wired = bootstrap(AnalyticsSettings(mongo_db=db_name), mongo=mongo_client, bus=InMemoryBus())
    await ensure_indexes(wired.db, INDEXES)
    yield wired
    await mongo_client.drop_database(db_name)


def bus_of(deps: Deps) -> InMemoryBus:
    assert isinstance(deps.bus, InMemoryBus)
    return deps.bus


def env(event: Event, correlation: str, actor: Actor = SYSTEM) -> Envelope[Any]:
    return Envelope.wrap(event, correlation_id=correlation, actor=actor)


def registered(user_id: str = "u1", region: str | None = "eu-west") -> Envelope[Any]:
    user = UserRegistered(
        user_id=user_id, username=user_id, email=f"{user_id}@example.com", region=region
    )
    return env(user, user_id)  # before sign-in: no actor yet


def product(product_id: str, name: str) -> Envelope[Any]:
    created = ProductCreated(product_id=product_id, name=name, category="tea", price_cents=500)
    return env(created, product_id)


def order(
    order_id: str, *lines: tuple[str, int, int], user_id: str = "u1"
) -> tuple[Envelope[Any], Envelope[Any], Envelope[Any]]:
    """Placed, paid and confirmed: `lines` are (product, quantity, unit price in cents)."""
    items = tuple(PricedLine(product_id=p, quantity=q, price_cents=c) for p, q, c in lines)
    total = sum(i.quantity * i.price_cents for i in items)
    actor = Actor(user_id=user_id, role="Customer")
    placed = OrderPlaced(
        order_id=order_id,
        user_id=user_id,
        items=items,
        total_cents=total,
        address_id="a1",
        payment_method_id="pm1",
    )
    paid = PaymentAuthorized(
        order_id=order_id,
        user_id=user_id,
        payment_id=f"pay-{order_id}",
        amount_cents=total,
        attempts=1,
    )
    done = OrderConfirmed(
        order_id=order_id,
        user_id=user_id,
        items=items,
        total_cents=total,
        payment_method_id="pm1",
    )
    return env(placed, order_id, actor), env(paid, order_id), env(done, order_id)


async def deliver(deps: Deps, *envelopes: Envelope[Any]) -> None:
    """Through the handler table, as a consumer that does not batch would."""
    bus = bus_of(deps)
    for envelope in envelopes:
        await bus.publish(envelope)
    await bus.deliver()


async def record_batch(deps: Deps, envelopes: Sequence[Envelope[Any]]) -> list[str]:
    """Through the batch handler, in one transaction, as `bus.batch.BatchConsumer` runs it."""

    async def body(session: AsyncClientSession) -> list[str]:
        batch = BatchContext(
            session=session,
            db=deps.db,
            log=structlog.get_logger("test"),
            outbox=deps.outbox,
            deps=deps,
        )
        return await handlers.record_events(envelopes, batch)

    return await deps.write(body)


def around_now() -> Window:
    now = datetime.now(UTC)
    return Window(now - timedelta(hours=1), now + timedelta(hours=1))


async def test_confirmed_and_failed_orders_show_in_the_sales_and_funnel_reports(
    deps: Deps,
) -> None:
    confirmed_order = order("o1", ("p1", 2, 500), ("p2", 1, 300))
    failed_placed, _, _ = order("o2", ("p1", 1, 500))
    declined = PaymentFailed(
        order_id="o2",
        user_id="u1",
        payment_id="pay-o2",
        reason="declined",
        attempts=1,
        retryable=False,
    )
    failed = env(declined, "o2")
    await deliver(
        deps, registered(), product("p1", "Green tea"), *confirmed_order, failed_placed, failed
    )

    report = await commands.sales_report(deps, around_now(), "product", "USD")
    assert report["revenue_cents"] == 1300
    assert report["orders_by_status"] == {"CONFIRMED": 1, "PAYMENT_FAILED": 1}
    assert report["average_order_value_cents"] == 1300
    assert report["payment_failure_rate"] == 0.5
    assert report["currencies"] == ["USD"]
    top = [
        (p["product_id"], p["name"], p["quantity"], p["revenue_cents"])
        for p in report["top_products"]
    ]
    assert top == [("p1", "Green tea", 2, 1000), ("p2", None, 1, 300)]
    assert [(g["key"], g["orders"], g["revenue_cents"]) for g in report["groups"]] == [
        ("p1", 1, 1000),
        ("p2", 1, 300),
    ]
    by_day = await commands.sales_report(deps, around_now(), "day", "USD")
    [day] = by_day["groups"]
    assert (day["orders"], day["revenue_cents"]) == (1, 1300)
    # Another currency: none of these orders.
    euros = await commands.sales_report(deps, around_now(), "day", "EUR")
    assert (euros["revenue_cents"], euros["orders_by_status"], euros["currencies"]) == (
        0,
        {},
        ["USD"],
    )

    funnel = await commands.funnel_report(deps, around_now())
    assert funnel == {"registered": 1, "profile_complete": 0, "first_order": 1, "repeat_order": 0}


async def test_revenue_by_product_names_each_product_as_the_catalogue_now_does(
    deps: Deps,
) -> None:
    """Names come from inventory's product events (the catalogue replica). A product renamed
    after its sales is one row under its new name; one analytics never heard of has none."""
    renamed = ProductUpdated(product_id="p1", name="Sencha", category="tea", price_cents=500)
    await deliver(
        deps,
        product("p1", "Green tea"),
        *order("o1", ("p1", 2, 500), ("p2", 1, 300)),
        *order("o2", ("p1", 1, 500)),
        env(renamed, "p1"),
    )

    report = await commands.sales_report(deps, around_now(), "product", "USD")
    groups = [(g["key"], g["name"], g["orders"], g["revenue_cents"]) for g in report["groups"]]
    assert groups == [("p1", "Sencha", 2, 1500), ("p2", None, 1, 300)]
    assert [p["name"] for p in report["top_products"]] == ["Sencha", None]

    rows = list(csv.reader(io.StringIO(SalesReport.model_validate(report).as_csv(names=True))))
    assert rows == [
        ["key", "orders", "revenueCents", "refundsCents", "netRevenueCents", "name"],
        ["p1", "2", "1500", "0", "1500", "Sencha"],
        ["p2", "1", "300", "0", "300", ""],
    ]
    # By day: no names, and the CSV keeps api.md's columns and the two appended ones.
    by_day = await commands.sales_report(deps, around_now(), "day", "USD")
    assert [g.get("name") for g in by_day["groups"]] == [None]
    header = SalesReport.model_validate(by_day).as_csv().splitlines()[0]
    assert header == "key,orders,revenueCents,refundsCents,netRevenueCents"


async def test_a_duplicate_event_is_counted_once_in_a_batch_and_across_batches(
    deps: Deps,
) -> None:
    placed, paid, done = order("o1", ("p1", 2, 500))

    user = registered()
    recorded = await record_batch(deps, [user, placed, paid, done, done])
    assert recorded == [user.id, placed.id, paid.id, done.id]  # `done` once
    # Redelivered next to a new event: only the new one is recorded.
    later, _, _ = order("o2", ("p1", 1, 500))
    assert await record_batch(deps, [done, paid, later]) == [later.id]
    # Redelivered to a process that never saw it (the table's handler, no inbox in memory).
    again = bootstrap(deps.settings, mongo=deps.mongo, bus=InMemoryBus())
    await deliver(again, done)

    report = await commands.sales_report(deps, around_now(), "day", "USD")
    assert report["revenue_cents"] == 1000
    assert report["orders_by_status"] == {"CONFIRMED": 1, "PENDING": 1}
    facts = await deps.store.user_facts.find_one({"_id": "u1"})
    assert facts is not None and facts["confirmed_orders"] == ["o1"]
    assert await deps.store.events.count_documents({"_id": done.id}) == 1
    assert await deps.store.events.count_documents({}) == 5


async def test_the_third_confirmed_order_grants_one_promotion(deps: Deps) -> None:
    orders = [order(f"o{n}", ("p1", 1, 500)) for n in range(1, 4)]
    await deliver(deps, registered(), *(e for o in orders for e in o))

    [granted] = bus_of(deps).of_type(PromotionGranted)
    third_confirmation = orders[2][2]
    assert granted.causation_id == third_confirmation.id
    assert (granted.data.user_id, granted.data.percent_off) == ("u1", 10)
    [promotion] = await commands.active_promotions(deps, "u1")
    assert promotion["_id"] == granted.data.code
    # The earning confirmation again, as a batch: no second grant.
    assert await record_batch(deps, [third_confirmation]) == []
    assert len(bus_of(deps).of_type(PromotionGranted)) == 1


async def test_an_inactive_buyer_is_won_back_once(deps: Deps) -> None:
    await deliver(deps, registered(), *order("o1", ("p1", 1, 500)))
    soon = datetime.now(UTC) + timedelta(days=5)
    assert await commands.grant_winbacks(deps, soon) == 0  # active a moment ago

    later = datetime.now(UTC) + timedelta(days=deps.settings.winback_after_days + 1)
    assert await commands.grant_winbacks(deps, later) == 1
    assert await commands.grant_winbacks(deps, later) == 0
    [granted] = bus_of(deps).of_type(PromotionGranted)
    assert (granted.data.user_id, granted.data.percent_off) == ("u1", 15)
    deps.clock = lambda: later
    assert [p["_id"] for p in await commands.active_promotions(deps, "u1")] == [granted.data.code]


async def test_the_audit_trail_pages_and_names_the_region_of_the_account(deps: Deps) -> None:
    placed, paid, done = order("o1", ("p1", 1, 500))
    await deliver(deps, registered(region="eu-west"), placed, paid, done)

    rows, more = await commands.audit_trail(
        deps, AuditFilters(correlation_id="o1"), after=None, limit=2
    )
    assert more
    assert [r["action"] for r in rows] == ["OrderPlaced", "PaymentAuthorized"]
    assert rows[0]["actor"]["user_id"] == "u1"
    assert rows[0]["actor"]["region"] == "eu-west"  # the order came without one: the account's
    rest, more = await commands.audit_trail(
        deps, AuditFilters(correlation_id="o1"), after=(rows[1]["at"], rows[1]["_id"]), limit=2
    )
    assert [r["action"] for r in rest] == ["OrderConfirmed"] and not more


async def test_start_up_moves_an_older_database_on(deps: Deps) -> None:
    """Start-up drops the inbox of the time before batches (rows and TTL index serve nothing)."""
    await deps.db["inbox"].insert_one({"_id": "e1|analytics", "processed_at": datetime.now(UTC)})
    await tidy_legacy(FastAPI(), deps)
    assert "inbox" not in await deps.db.list_collection_names()
    await tidy_legacy(FastAPI(), deps)  # nothing left to do
