"""After CONFIRMED, on the embedded store with an in-memory bus: shipments, returns and refunds
fed as the services would publish them (each at its own time), then the sales report and the
audit trail a Manager or an Admin would read.

The window is three days from T0. Inside it: o1 (2 lamps and a shade, 10 % off) shipped,
delivered, one lamp returned and refunded; o2 (a lamp) shipped, a return requested only; o3 (a
lamp) shipped, delivered, returned, refunded after the window; o4 in euros, refunded in the
window. Before it: o0 (2 shades), whose return is refunded inside the window.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from analytics_service import commands
from analytics_service.bootstrap import bootstrap
from analytics_service.deps import Deps
from analytics_service.domain import Window
from analytics_service.schemas import SalesReport
from analytics_service.settings import AnalyticsSettings
from analytics_service.store import INDEXES, AuditFilters
from pymongo import AsyncMongoClient

from bus.fake import InMemoryBus
from contracts import SYSTEM, Actor, Envelope, Event
from contracts.inventory import ProductCreated, StockReturned
from contracts.order import (
    OrderConfirmed,
    OrderPlaced,
    ReturnApproved,
    ReturnReceived,
    ReturnRejected,
    ReturnRequested,
)
from contracts.payment import PaymentRefunded, PaymentRefundFailed
from contracts.shipping import ShipmentCreated, ShipmentDelivered, ShipmentDispatched
from contracts.types import Line, PricedLine
from kit.mongo import ensure_indexes

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
WINDOW = Window(T0, T0 + 3 * DAY)
MANAGER = Actor(user_id="m1", role="Manager", ip="10.0.0.5", device="Firefox", region="eu")
ADMIN = Actor(user_id="a1", role="Admin", ip="10.0.0.9", device="curl", region="eu")


@pytest.fixture
async def deps(mongo_client: AsyncMongoClient[Any], db_name: str) -> AsyncIterator[Deps]:
    wired = bootstrap(AnalyticsSettings(mongo_db=db_name), mongo=mongo_client, bus=InMemoryBus())
    await ensure_indexes(wired.db, INDEXES)
    yield wired
    await mongo_client.drop_database(db_name)


def at(event: Event, when: datetime, actor: Actor = SYSTEM) -> Envelope[Any]:
    correlation = getattr(event, "order_id", None) or "c"
    envelope = Envelope.wrap(event, correlation_id=correlation, actor=actor)
    return envelope.model_copy(update={"occurred_at": when})


def bought(
    order_id: str,
    user_id: str,
    when: datetime,
    *lines: tuple[str, int, int],
    percent_off: int = 0,
    currency: str = "USD",
) -> list[Envelope[Any]]:
    """Placed and confirmed at `when`: `lines` are (product, quantity, unit price)."""
    items = tuple(PricedLine(product_id=p, quantity=q, price_cents=c) for p, q, c in lines)
    total = sum(i.quantity * i.price_cents for i in items) * (100 - percent_off) // 100
    ids = {"order_id": order_id, "user_id": user_id, "currency": currency}
    customer = Actor(user_id=user_id, role="Customer")
    placed = OrderPlaced(
        items=items, total_cents=total, address_id="a", payment_method_id="pm", **ids
    )
    done = OrderConfirmed(items=items, total_cents=total, payment_method_id="pm", **ids)
    return [at(placed, when, customer), at(done, when)]


def shipped(order_id: str, user_id: str, when: datetime) -> list[Envelope[Any]]:
    ids = {"order_id": order_id, "user_id": user_id, "shipment_id": f"s-{order_id}"}
    created = ShipmentCreated(lines=(Line(product_id="x", quantity=1),), **ids)
    dispatched = ShipmentDispatched(
        carrier="SandboxPost", tracking_number=f"T-{order_id}", shipped_at=when, **ids
    )
    return [at(created, when - HOUR), at(dispatched, when, ADMIN)]


def delivered(order_id: str, user_id: str, when: datetime) -> Envelope[Any]:
    ids = {"order_id": order_id, "user_id": user_id, "shipment_id": f"s-{order_id}"}
    return at(ShipmentDelivered(delivered_at=when, **ids), when, ADMIN)


def returned(
    order_id: str,
    user_id: str,
    return_id: str,
    lines: tuple[tuple[str, int], ...],
    refund: int,
    *,
    received: datetime,
    refunded: datetime,
    currency: str = "USD",
) -> list[Envelope[Any]]:
    """Requested 2 h before it is received, approved 1 h before, received, restocked, refunded."""
    ids = {"order_id": order_id, "user_id": user_id, "return_id": return_id}
    units = tuple(Line(product_id=p, quantity=q) for p, q in lines)
    customer = Actor(user_id=user_id, role="Customer")
    money = {"refund_cents": refund, "currency": currency}
    return [
        at(
            ReturnRequested(lines=units, reason="too big", **money, **ids),
            received - 2 * HOUR,
            customer,
        ),
        at(ReturnApproved(decided_by="m1", **ids), received - HOUR, MANAGER),
        at(
            ReturnReceived(lines=units, payment_id=f"pay-{order_id}", **money, **ids),
            received,
            ADMIN,
        ),
        at(StockReturned(return_id=return_id, order_id=order_id, lines=units), received),
        at(
            PaymentRefunded(
                payment_id=f"pay-{order_id}", amount_cents=refund, currency=currency, **ids
            ),
            refunded,
        ),
    ]


def script() -> list[Envelope[Any]]:
    catalogue = [
        at(ProductCreated(product_id=p, name=n, category="lamps", price_cents=c), T0 - 9 * DAY)
        for p, n, c in (("lamp", "Lamp", 1000), ("shade", "Shade", 500))
    ]
    o0 = [
        *bought("o0", "u1", T0 - 5 * DAY, ("shade", 2, 500)),
        *shipped("o0", "u1", T0 - 4 * DAY),
        delivered("o0", "u1", T0 - 3 * DAY),
        *returned("o0", "u1", "r0", (("shade", 1),), 500, received=T0 - DAY, refunded=T0 + 2 * DAY),
    ]
    o1 = [
        *bought("o1", "u1", T0 + HOUR, ("lamp", 2, 1000), ("shade", 1, 500), percent_off=10),
        *shipped("o1", "u1", T0 + 3 * HOUR),  # 2 h after its confirmation
        delivered("o1", "u1", T0 + 27 * HOUR),  # 26 h after it
        *returned(
            "o1", "u1", "r1", (("lamp", 1),), 900, received=T0 + 30 * HOUR, refunded=T0 + 31 * HOUR
        ),
    ]
    o2 = [
        *bought("o2", "u2", T0 + 2 * HOUR, ("lamp", 1, 1000)),
        *shipped("o2", "u2", T0 + 6 * HOUR),  # 4 h
        delivered("o2", "u2", T0 + 4 * DAY),  # after the window
        at(
            ReturnRequested(
                return_id="r2",
                order_id="o2",
                user_id="u2",
                lines=(Line(product_id="lamp", quantity=1),),
                reason="changed mind",
                refund_cents=1000,
            ),
            T0 + 4 * DAY,
        ),
        at(
            ReturnRejected(
                return_id="r2", order_id="o2", user_id="u2", decided_by="m1", reason="late"
            ),
            T0 + 4 * DAY + HOUR,
            MANAGER,
        ),
    ]
    o3 = [
        *bought("o3", "u2", T0 + 5 * HOUR, ("lamp", 1, 1000)),
        *shipped("o3", "u2", T0 + 6 * HOUR),  # 1 h
        delivered("o3", "u2", T0 + 30 * HOUR),  # 25 h
        *returned(
            "o3", "u2", "r3", (("lamp", 1),), 1000, received=T0 + 2 * DAY, refunded=T0 + 4 * DAY
        ),
        at(
            PaymentRefundFailed(
                order_id="o3", user_id="u2", payment_id="pay-o3", amount_cents=5, reason="declined"
            ),
            T0 + 2 * DAY,
        ),
    ]
    o4 = [
        *bought("o4", "u3", T0 + 7 * HOUR, ("lamp", 1, 1000), currency="EUR"),
        *shipped("o4", "u3", T0 + 8 * HOUR),
        delivered("o4", "u3", T0 + 9 * HOUR),
        *returned(
            "o4",
            "u3",
            "r4",
            (("lamp", 1),),
            1000,
            received=T0 + DAY,
            refunded=T0 + DAY,
            currency="EUR",
        ),
    ]
    return [*catalogue, *o0, *o1, *o2, *o3, *o4]


async def deliver(deps: Deps, envelopes: list[Envelope[Any]]) -> None:
    bus = deps.bus
    assert isinstance(bus, InMemoryBus)
    for envelope in envelopes:
        await bus.publish(envelope)
    await bus.deliver()


async def test_refunds_net_revenue_fulfilment_times_and_return_rates(deps: Deps) -> None:
    events = script()
    await deliver(deps, events)

    report = await commands.sales_report(deps, WINDOW, "day", "USD")
    # Revenue: the window's confirmed orders (o1 2250 after 10 % off, o2 and o3 1000 each).
    assert report["revenue_cents"] == 4250
    # Refunds by their own time: r1 (o1) and r0 (o0, placed before the window); not r3 (after
    # it), not r4 (euros).
    assert report["refunds_cents"] == 900 + 500
    assert report["net_revenue_cents"] == 4250 - 1400
    days = [
        (g["key"], g["orders"], g["revenue_cents"], g["refunds_cents"], g["net_revenue_cents"])
        for g in report["groups"]
    ]
    assert days == [
        ("2026-03-01", 3, 4250, 0, 4250),
        ("2026-03-02", 0, 0, 900, -900),
        ("2026-03-03", 0, 0, 500, -500),
    ]
    assert sum(g["net_revenue_cents"] for g in report["groups"]) == report["net_revenue_cents"]

    # Confirmation → shipment over o1 (2 h), o2 (4 h), o3 (1 h): o0 shipped before the window.
    fulfilment = report["fulfilment"]
    assert fulfilment["to_shipment"] == {
        "count": 3,
        "average_seconds": 7 * 3600 / 3,
        "p50_seconds": 2 * 3600.0,
        "p90_seconds": 4 * 3600.0,
    }
    # → delivery over o1 (26 h) and o3 (25 h): o2 was delivered after the window.
    assert fulfilment["to_delivery"] == {
        "count": 2,
        "average_seconds": 25.5 * 3600,
        "p50_seconds": 25 * 3600.0,
        "p90_seconds": 26 * 3600.0,
    }
    # Of the window's confirmed orders: 4 lamps sold, 2 received back (r1, r3; r2 was only
    # requested); 1 shade sold, none back (r0's shade is o0's, sold before the window).
    assert report["return_rates"] == [
        {"product_id": "lamp", "name": "Lamp", "sold": 4, "returned": 2, "rate": 0.5},
        {"product_id": "shade", "name": "Shade", "sold": 1, "returned": 0, "rate": 0.0},
    ]

    by_product = await commands.sales_report(deps, WINDOW, "product", "USD")
    products = {
        g["key"]: (g["orders"], g["revenue_cents"], g["refunds_cents"], g["net_revenue_cents"])
        for g in by_product["groups"]
    }
    # o1's 2250 spread by list value: lamps 1800, shade 450; r1's 900 is the lamp's, r0's 500
    # the shade's.
    assert products == {"lamp": (3, 3800, 900, 2900), "shade": (1, 450, 500, -50)}

    euros = await commands.sales_report(deps, WINDOW, "day", "EUR")
    assert (euros["revenue_cents"], euros["refunds_cents"], euros["net_revenue_cents"]) == (
        1000,
        1000,
        0,
    )
    assert euros["fulfilment"]["to_shipment"]["count"] == 1

    # The CSV: api.md's three columns first, then the refunds and the net.
    rows = list(
        csv.reader(io.StringIO(SalesReport.model_validate(by_product, by_name=True).as_csv()))
    )
    assert rows == [
        ["key", "orders", "revenueCents", "refundsCents", "netRevenueCents"],
        ["lamp", "3", "3800", "900", "2900"],
        ["shade", "1", "450", "500", "-50"],
    ]
    body = SalesReport.model_validate(report, by_name=True).model_dump(mode="json", by_alias=True)
    assert body["refundsCents"] == 1400 and body["netRevenueCents"] == 2850
    assert body["fulfilment"]["toShipment"]["p90Seconds"] == 4 * 3600.0
    assert body["returnRates"][0] == {
        "productId": "lamp",
        "name": "Lamp",
        "sold": 4,
        "returned": 2,
        "rate": 0.5,
    }

    # Every event again, then each refund and return re-emitted under a new event id: the same
    # report (the events collection dedupes ids; a return's refund is keyed by its return).
    await deliver(deps, events)
    again = [
        at(e.data, e.occurred_at, e.actor)
        for e in events
        if isinstance(e.data, PaymentRefunded | ReturnReceived)
    ]
    await deliver(deps, again)
    for group_by, first in (("day", report), ("product", by_product)):
        assert await commands.sales_report(deps, WINDOW, group_by, "USD") == first  # type: ignore[arg-type]


async def test_the_audit_trail_lists_the_fulfilment_steps_with_their_actor(deps: Deps) -> None:
    await deliver(deps, script())
    rows, _ = await commands.audit_trail(deps, AuditFilters(entity_id="o1"), after=None, limit=100)
    steps = [
        (r["action"], r["actor"]["user_id"], r["actor"]["role"], r["entity_type"], r["outcome"])
        for r in rows
        if r["action"].startswith(("Shipment", "Return", "PaymentRefund", "StockReturned"))
    ]
    assert steps == [
        ("ShipmentCreated", None, "system", "order", "ok"),
        ("ShipmentDispatched", "a1", "Admin", "order", "ok"),
        ("ShipmentDelivered", "a1", "Admin", "order", "ok"),
        ("ReturnRequested", "u1", "Customer", "order", "ok"),
        ("ReturnApproved", "m1", "Manager", "order", "ok"),
        ("ReturnReceived", "a1", "Admin", "order", "ok"),
        ("StockReturned", None, "system", "order", "ok"),
        ("PaymentRefunded", None, "system", "order", "ok"),
    ]
    received = next(r for r in rows if r["action"] == "ReturnReceived")
    assert received["actor"]["ip"] == "10.0.0.9" and received["correlation_id"] == "o1"
    rejected, _ = await commands.audit_trail(
        deps, AuditFilters(action="ReturnRejected"), after=None, limit=10
    )
    assert [(r["entity_id"], r["actor"]["user_id"]) for r in rejected] == [("o2", "m1")]
    failed, _ = await commands.audit_trail(
        deps, AuditFilters(action="PaymentRefundFailed"), after=None, limit=10
    )
    assert [(r["entity_id"], r["outcome"]) for r in failed] == [("o3", "failed")]
