"""Issue 19's must-show through the gateway: after CONFIRMED, the parcel and what comes back.

One shop (user, inventory, order, payment, shipping, notify and the gateway, in this process on
the real broker and Mongo, with a prefix of its own) serves the module. The story runs once
(module fixture), recording the answers of the calls that must be refused at the moment they
are made; each test asserts one part of it:

- Ann orders two mugs and a plate → CONFIRMED → one shipment PENDING in the warehouse queue. A
  return now is 409 NOT_DELIVERED; delivering the PENDING parcel is 409 INVALID_STATE; Ann may
  read her shipment but not ship it (403), Bob may not even see it (404).
- The Admin ships it without a tracking number (the sandbox carrier issues one): on the order's
  `fulfilment`, on the timeline and in an ORDER_SHIPPED notification with carrier and number.
  Shipping it again is 409 INVALID_STATE; a return while SHIPPED is still 409 NOT_DELIVERED.
- Delivered (ORDER_DELIVERED): Ann sends one mug back → a Manager approves (a second approval is
  409) → the Admin receives it (before approval: 409; by Ann or the Manager: 403) → payment
  refunds exactly the mug's price, inventory puts it back on sale, the return is REFUNDED,
  `refundedCents` grows, REFUND_ISSUED. Two more mugs are one too many (422); the plate's return
  is rejected and refunds nothing.
- Bob pays with a 15 % code: his first return is refunded the line's price less the discount in
  the same proportion, rounded down; the one that sends back the last units refunds what is left
  of the capture, so that together they pay back exactly what was captured, never more.
- Every new event published a second time changes nothing.

The 15 % code is granted by publishing the PromotionGranted that analytics would (analytics
grants one after a third confirmed order, which tests/e2e/test_journey.py shows): this module is
about what happens after the order, not about earning codes.
"""

from __future__ import annotations

import json
import secrets
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
from prometheus_client import REGISTRY

from bus import AmqpPublisher, BusConnection
from bus.runtime import bus_config
from contracts import Envelope
from contracts.analytics import PromotionGranted
from contracts.catalogue import CONSUMERS
from devkit.bus_testing import eventually

from .shop import Customer, Shop, running_shop

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(180)]

PERCENT_OFF = 15
# Bob's order: 2 × 999 + 1 001 = 2 999, less 15 % (449, rounded down) = 2 550 captured.
LAMP, SHADE = 999, 1_001
NEW_EVENTS = (
    "OrderConfirmed",  # what shipping makes a shipment from
    "ShipmentCreated",
    "ShipmentDispatched",
    "ShipmentDelivered",
    "ReturnRequested",
    "ReturnApproved",
    "ReturnRejected",
    "ReturnReceived",
    "PaymentRefunded",
    "StockReturned",
)


@dataclass
class Story:
    shop: Shop
    ann: Customer
    bob: Customer  # another customer to Ann; he pays with a promotion code
    products: dict[str, str]
    orders: dict[str, str]  # "plain" (Ann's), "unshipped" (Ann's, never shipped), "promo" (Bob's)
    shipments: dict[str, dict[str, Any]] = field(default_factory=dict)  # as first listed
    shipped: dict[str, dict[str, Any]] = field(default_factory=dict)  # the ship answers
    delivered: dict[str, dict[str, Any]] = field(default_factory=dict)  # the deliver answers
    returns: dict[str, dict[str, Any]] = field(default_factory=dict)  # the 201 answers
    views: dict[str, dict[str, Any]] = field(default_factory=dict)  # the order, at a moment
    stock: dict[str, dict[str, Any]] = field(default_factory=dict)  # a product, at a moment
    calls: dict[str, httpx.Response] = field(default_factory=dict)  # refusals, as answered


def ok(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


async def grant_code(shop: Shop, amqp_url: str, customer: Customer) -> str:
    """A 15 % code for `customer`, as analytics grants it (PromotionGranted on the bus)."""
    code = f"E2E{secrets.token_hex(3).upper()}"
    grant = PromotionGranted(
        user_id=customer.user_id,
        code=code,
        percent_off=PERCENT_OFF,
        expires_at=datetime.now(UTC) + timedelta(days=1),
        reason="e2e",
    )
    config = bus_config(shop.apps["order"].state.settings)
    connection = BusConnection(amqp_url, name=f"{config.prefix}e2e-grant")
    publisher = AmqpPublisher(connection, config)
    try:
        await publisher.publish(Envelope.wrap(grant, correlation_id=customer.user_id))
    finally:
        await publisher.close()
        await connection.close()
    return code


async def public_product(shop: Shop, product_id: str) -> dict[str, Any]:
    return ok(await shop.client.get(f"/api/v1/products/{product_id}"))


async def product_state(shop: Shop, product_id: str) -> dict[str, Any]:
    """What the shop window shows (stockAvailable) and the Admin's counts."""
    return {
        "stockAvailable": (await public_product(shop, product_id))["stockAvailable"],
        **await shop.stock(product_id),
    }


async def _story(shop: Shop, amqp_url: str) -> Story:
    client = shop.client
    products = {
        "mug": await shop.product(stock=10, price_cents=1_000),
        "plate": await shop.product(stock=10, price_cents=2_500),
        "lamp": await shop.product(stock=10, price_cents=LAMP),
        "shade": await shop.product(stock=10, price_cents=SHADE),
    }
    ann, bob = await shop.customer(), await shop.customer()
    story = Story(shop, ann, bob, products, orders={})
    code = await grant_code(shop, amqp_url, bob)

    async def placed_with_code() -> bool:
        answer = await shop.place(
            bob, (products["lamp"], 2), (products["shade"], 1), promoCode=code
        )
        if answer.status_code == 422 and answer.json()["code"] == "INVALID_PROMO_CODE":
            return False  # the order service has not taken PromotionGranted yet
        story.orders["promo"] = ok(answer, 202)["orderId"]
        return True

    story.orders["plain"] = await shop.order_of(ann, (products["mug"], 2), (products["plate"], 1))
    story.orders["unshipped"] = await shop.order_of(ann, (products["mug"], 1))
    await eventually(placed_with_code, timeout=10, what="the order service to know the code")
    for order_id in story.orders.values():
        await shop.wait_for(order_id, "CONFIRMED")

    # One shipment per CONFIRMED order, PENDING in the warehouse queue.
    for key, order_id in story.orders.items():
        story.shipments[key] = await shop.shipment_of(order_id)
    plain, plain_parcel = story.orders["plain"], story.shipments["plain"]["shipmentId"]
    story.views["pending"] = await shop.wait_fulfilment(plain, "PENDING")
    calls = story.calls
    calls["return while PENDING"] = await shop.ask_return(ann, plain, (products["mug"], 1))
    calls["deliver while PENDING"] = await shop.shipment(plain_parcel, "deliver")
    calls["customer ships"] = await shop.shipment(plain_parcel, "ship", ann.headers)
    calls["customer delivers"] = await shop.shipment(plain_parcel, "deliver", ann.headers)
    calls["customer lists shipments"] = await client.get("/api/v1/shipments", headers=ann.headers)
    calls["own shipment"] = await client.get(
        f"/api/v1/shipments/{plain_parcel}", headers=ann.headers
    )
    calls["another's shipment"] = await client.get(
        f"/api/v1/shipments/{plain_parcel}", headers=bob.headers
    )

    # Shipped: Ann's by the sandbox carrier's own number, Bob's with the one the Admin typed.
    story.shipped["plain"] = ok(await shop.shipment(plain_parcel, "ship"))
    calls["ship twice"] = await shop.shipment(plain_parcel, "ship")
    promo_parcel = story.shipments["promo"]["shipmentId"]
    typed = {"carrier": "UPS", "trackingNumber": "1Z999AA10123456784"}
    story.shipped["promo"] = ok(await shop.shipment(promo_parcel, "ship", body=typed))
    story.views["shipped"] = await shop.wait_fulfilment(plain, "SHIPPED")
    calls["return while SHIPPED"] = await shop.ask_return(ann, plain, (products["mug"], 1))

    story.delivered["plain"] = ok(await shop.shipment(plain_parcel, "deliver"))
    story.delivered["promo"] = ok(await shop.shipment(promo_parcel, "deliver"))
    calls["deliver twice"] = await shop.shipment(plain_parcel, "deliver")
    story.views["delivered"] = await shop.wait_fulfilment(plain, "DELIVERED")
    await shop.wait_fulfilment(story.orders["promo"], "DELIVERED")

    # Ann sends one of her two mugs back.
    story.stock["mug before"] = await product_state(shop, products["mug"])
    mug = story.returns["mug"] = ok(await shop.ask_return(ann, plain, (products["mug"], 1)), 201)
    calls["customer approves"] = await shop.return_step(mug["returnId"], "approve", ann.headers)
    calls["customer rejects"] = await shop.return_step(mug["returnId"], "reject", ann.headers)
    calls["receive while REQUESTED"] = await shop.return_step(mug["returnId"], "receive")
    calls["another's returns"] = await client.get(
        f"/api/v1/orders/{plain}/returns", headers=bob.headers
    )
    calls["return of another's order"] = await shop.ask_return(bob, plain, (products["mug"], 1))
    calls["customer lists returns"] = await client.get("/api/v1/returns", headers=ann.headers)
    story.returns["mug approved"] = ok(
        await shop.return_step(mug["returnId"], "approve", shop.manager)
    )
    calls["approve twice"] = await shop.return_step(mug["returnId"], "approve", shop.manager)
    calls["customer receives"] = await shop.return_step(mug["returnId"], "receive", ann.headers)
    calls["manager receives"] = await shop.return_step(mug["returnId"], "receive", shop.manager)
    story.returns["mug received"] = ok(await shop.return_step(mug["returnId"], "receive"))
    await shop.wait_return(plain, mug["returnId"], "REFUNDED")
    calls["two more mugs"] = await shop.ask_return(ann, plain, (products["mug"], 2))

    # The plate comes back too, but the Manager refuses it.
    plate = story.returns["plate"] = ok(
        await shop.ask_return(ann, plain, (products["plate"], 1), reason="chipped"), 201
    )
    story.returns["plate rejected"] = ok(
        await shop.return_step(plate["returnId"], "reject", shop.manager, {"reason": "worn"})
    )

    # Bob's code: one lamp, then the rest.
    promo = story.orders["promo"]
    for key, lines in (
        ("lamp", [(products["lamp"], 1)]),
        ("rest", [(products["lamp"], 1), (products["shade"], 1)]),
    ):
        asked = story.returns[key] = ok(await shop.ask_return(bob, promo, *lines), 201)
        ok(await shop.return_step(asked["returnId"], "approve", shop.manager))
        ok(await shop.return_step(asked["returnId"], "receive"))
        await shop.wait_return(promo, asked["returnId"], "REFUNDED")

    await shop.check_invariants(story.orders.values(), products.values())
    return story


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def story(mongo_url: str, amqp_url: str, run_prefix: str) -> AsyncIterator[Story]:
    async with running_shop(mongo_url, amqp_url, run_prefix, with_notify=True) as shop:
        yield await _story(shop, amqp_url)


# --- helpers ------------------------------------------------------------------------------------


async def inbox(shop: Shop, headers: dict[str, str]) -> list[dict[str, Any]]:
    answer = await shop.client.get("/api/v1/notifications", params={"limit": 100}, headers=headers)
    items: list[dict[str, Any]] = ok(answer)["items"]
    return items


async def in_app(
    shop: Shop, headers: dict[str, str], type_: str, count: int = 1
) -> list[dict[str, Any]]:
    """The in-app notifications of a type, once `count` are there (and their email twins)."""

    async def arrived() -> bool:
        channels = Counter(i["channel"] for i in await inbox(shop, headers) if i["type"] == type_)
        return channels["inApp"] >= count and channels["email"] >= count

    await eventually(arrived, what=f"a {type_} notification")
    return [i for i in await inbox(shop, headers) if i["type"] == type_ and i["channel"] == "inApp"]


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert (response.status_code, response.json().get("code")) == (status, code), response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    return body


def returned(order: dict[str, Any], return_id: str) -> dict[str, Any]:
    (found,) = [r for r in order["returns"] if r["returnId"] == return_id]
    return found


def refund_of(order: dict[str, Any], *lines: tuple[int, int]) -> int:
    """api.md: the lines' price × quantity less the order's discount in the same proportion,
    rounded down to the cent."""
    gross = sum(price * quantity for price, quantity in lines)
    return gross * order["totalCents"] // order["subtotalCents"]


# --- the shipment -------------------------------------------------------------------------------


async def test_a_confirmed_order_gets_one_pending_shipment(story: Story) -> None:
    shop, products = story.shop, story.products
    parcel = story.shipments["plain"]
    assert parcel["orderId"] == story.orders["plain"]
    assert parcel["userId"] == story.ann.user_id
    assert parcel["status"] == "PENDING"
    assert sorted((line["productId"], line["quantity"]) for line in parcel["lines"]) == sorted(
        [(products["mug"], 2), (products["plate"], 1)]
    )
    assert parcel["address"]["line1"] == "1 Main St"
    assert parcel["address"]["zip"] == "12345"
    assert parcel.get("trackingNumber") is None and parcel["createdAt"]
    # The order knows it at once, and stays CONFIRMED.
    pending = story.views["pending"]
    assert pending["status"] == "CONFIRMED"
    assert pending["fulfilment"]["status"] == "PENDING"
    assert pending["fulfilment"]["shipmentId"] == parcel["shipmentId"]
    assert (pending["returns"], pending["refundedCents"]) == ([], 0)
    # The warehouse queue: a filter by status finds the parcels still there.
    queue = ok(
        await shop.client.get(
            "/api/v1/shipments", params={"status": "PENDING", "limit": 100}, headers=shop.manager
        )
    )
    assert {s["orderId"] for s in queue["items"]} == {story.orders["unshipped"]}
    # Ann reads her own shipment.
    assert ok(story.calls["own shipment"])["shipmentId"] == parcel["shipmentId"]
    (created,) = shop.events("ShipmentCreated", story.orders["plain"])
    assert created["data"]["shipmentId"] == parcel["shipmentId"]


async def test_shipped_with_tracking_on_the_order_its_timeline_and_the_inbox(
    story: Story,
) -> None:
    shop, ann = story.shop, story.ann
    shipped = story.shipped["plain"]
    assert shipped["status"] == "SHIPPED"
    carrier, tracking = shipped["carrier"], shipped["trackingNumber"]
    assert carrier and tracking and shipped["shippedAt"], shipped  # the sandbox carrier's
    typed = story.shipped["promo"]
    assert (typed["carrier"], typed["trackingNumber"]) == ("UPS", "1Z999AA10123456784")

    fulfilment = story.views["shipped"]["fulfilment"]
    assert fulfilment["status"] == "SHIPPED"
    assert (fulfilment["carrier"], fulfilment["trackingNumber"]) == (carrier, tracking)
    assert fulfilment["shippedAt"]

    (dispatched,) = shop.events("ShipmentDispatched", story.orders["plain"])
    assert dispatched["data"]["trackingNumber"] == tracking
    timeline = await shop.timeline(story.orders["plain"])
    entries = [e for e in timeline if e["eventId"] == dispatched["id"]]
    assert [e["eventType"] for e in entries] == ["ShipmentDispatched"], timeline

    (note,) = await in_app(shop, ann.headers, "ORDER_SHIPPED")
    text = f"{note['title']} {note['body']}"
    assert carrier in text and tracking in text, note
    assert note["entityId"] in (story.orders["plain"], shipped["shipmentId"]), note


async def test_delivered_on_the_order_and_in_the_inbox(story: Story) -> None:
    shop = story.shop
    delivered = story.delivered["plain"]
    assert delivered["status"] == "DELIVERED" and delivered["deliveredAt"]
    fulfilment = story.views["delivered"]["fulfilment"]
    assert fulfilment["status"] == "DELIVERED" and fulfilment["deliveredAt"]
    assert fulfilment["trackingNumber"] == story.shipped["plain"]["trackingNumber"]
    (note,) = await in_app(shop, story.ann.headers, "ORDER_DELIVERED")
    assert note["entityId"] in (story.orders["plain"], delivered["shipmentId"]), note
    # The warehouse queue by status.
    answer = await shop.client.get(
        "/api/v1/shipments", params={"status": "DELIVERED"}, headers=shop.admin
    )
    assert {s["orderId"] for s in ok(answer)["items"]} == {
        story.orders["plain"],
        story.orders["promo"],
    }


# --- returns ------------------------------------------------------------------------------------


async def test_a_received_return_refunds_the_lines_price_and_restocks_it(story: Story) -> None:
    shop, products, plain = story.shop, story.products, story.orders["plain"]
    asked = story.returns["mug"]
    assert asked["status"] == "REQUESTED"
    assert asked["orderId"] == plain
    assert [(i["productId"], i["quantity"]) for i in asked["items"]] == [(products["mug"], 1)]
    assert asked["refundCents"] == 1_000  # no promotion: exactly the mug's price
    assert asked["reason"] == "too many" and asked["createdAt"]
    assert story.returns["mug approved"]["status"] == "APPROVED"
    assert story.returns["mug received"]["status"] == "RECEIVED"

    return_id = asked["returnId"]
    order = await shop.get(plain)
    assert returned(order, return_id)["status"] == "REFUNDED"
    assert returned(order, return_id)["refundCents"] == 1_000
    assert order["refundedCents"] == 1_000  # the plate's rejected return added nothing
    assert order["status"] == "CONFIRMED"
    (refund,) = [e for e in shop.events("PaymentRefunded") if e["data"]["returnId"] == return_id]
    assert (refund["data"]["orderId"], refund["data"]["amountCents"]) == (plain, 1_000)

    # Back on sale: from committed to available (counted as returned), what was received
    # unchanged: available + reserved + committed = received still holds.
    (restock,) = [e for e in shop.events("StockReturned") if e["data"]["returnId"] == return_id]
    assert restock["data"]["lines"] == [{"productId": products["mug"], "quantity": 1}]
    before = story.stock["mug before"]
    after = await product_state(shop, products["mug"])
    assert after["stockAvailable"] == before["stockAvailable"] + 1
    assert after == before | {
        "stockAvailable": before["stockAvailable"] + 1,
        "available": before["available"] + 1,
        "committed": before["committed"] - 1,
        "returned": before["returned"] + 1,
    }

    # Every step on the order's timeline, each with its event.
    steps = {e["eventType"] for e in await shop.timeline(plain)}
    assert set(NEW_EVENTS) - {"OrderConfirmed"} <= steps, steps

    # Listed for the owner and in the staff's queue.
    mine = ok(await shop.client.get(f"/api/v1/orders/{plain}/returns", headers=story.ann.headers))
    assert {r["returnId"]: r["status"] for r in mine["items"]} == {
        return_id: "REFUNDED",
        story.returns["plate"]["returnId"]: "REJECTED",
    }
    queue = ok(
        await shop.client.get(
            "/api/v1/returns", params={"status": "REFUNDED", "limit": 100}, headers=shop.manager
        )
    )
    assert return_id in {r["returnId"] for r in queue["items"]}

    (note,) = await in_app(shop, story.ann.headers, "REFUND_ISSUED")
    assert note["entityId"] in (plain, return_id), note
    (approved,) = await in_app(shop, story.ann.headers, "RETURN_APPROVED")
    assert approved["entityId"] in (plain, return_id), approved
    alerts = await in_app(shop, shop.manager, "RETURN_REQUESTED", count=4)
    assert len(alerts) == 4  # the mug, the plate and Bob's two


async def test_a_promotion_is_shared_by_the_refunds_in_proportion(story: Story) -> None:
    shop, promo = story.shop, story.orders["promo"]
    order = await shop.get(promo)
    assert (order["subtotalCents"], order["discountCents"], order["totalCents"]) == (
        2_999,
        449,
        2_550,
    )
    lamp, rest = story.returns["lamp"], story.returns["rest"]
    # 999 × 2 550 / 2 999 = 849.43…: rounded down.
    assert lamp["refundCents"] == refund_of(order, (LAMP, 1)) == 849
    # The last delivered units back refund what is left of the capture (the order service's
    # rule, so that a full return pays everything back): 2 550 − 849 = 1 701, one cent more
    # than the proportion rounded down ((999 + 1 001) × 2 550 / 2 999 = 1 700.56…).
    assert refund_of(order, (LAMP, 1), (SHADE, 1)) == 1_700
    assert rest["refundCents"] == order["totalCents"] - lamp["refundCents"] == 1_701
    assert order["refundedCents"] == 849 + 1_701 == order["totalCents"]
    refunds = {
        e["data"]["returnId"]: e["data"]["amountCents"]
        for e in shop.events("PaymentRefunded", promo)
    }
    assert refunds == {lamp["returnId"]: 849, rest["returnId"]: 1_701}
    (capture,) = shop.events("PaymentCaptured", promo)
    assert sum(refunds.values()) == capture["data"]["amountCents"] == 2_550  # never more
    notes = await in_app(shop, story.bob.headers, "REFUND_ISSUED", count=2)
    assert len(notes) == 2, notes


async def test_a_rejected_return_refunds_nothing(story: Story) -> None:
    shop, plain = story.shop, story.orders["plain"]
    plate, rejected = story.returns["plate"], story.returns["plate rejected"]
    assert plate["refundCents"] == 2_500
    assert rejected["status"] == "REJECTED"
    order = await shop.get(plain)
    assert returned(order, plate["returnId"])["status"] == "REJECTED"
    assert order["refundedCents"] == 1_000
    await shop.settle()
    for type_ in ("ReturnReceived", "PaymentRefunded", "StockReturned"):
        assert not [e for e in shop.events(type_) if e["data"]["returnId"] == plate["returnId"]], (
            type_
        )
    (note,) = await in_app(shop, story.ann.headers, "RETURN_REJECTED")
    assert note["entityId"] in (plain, plate["returnId"]), note
    assert "worn" in f"{note['title']} {note['body']}", note


async def test_a_return_beyond_what_is_left_is_refused(story: Story) -> None:
    # Two mugs delivered, one returned: two more is one too many.
    problem(story.calls["two more mugs"], 422, "RETURN_QUANTITY_EXCEEDED")
    # Bob returned everything: not one more lamp.
    again = await story.shop.ask_return(
        story.bob, story.orders["promo"], (story.products["lamp"], 1)
    )
    problem(again, 422, "RETURN_QUANTITY_EXCEEDED")


async def test_a_return_before_delivery_is_refused(story: Story) -> None:
    problem(story.calls["return while PENDING"], 409, "NOT_DELIVERED")
    problem(story.calls["return while SHIPPED"], 409, "NOT_DELIVERED")
    never = await story.shop.ask_return(
        story.ann, story.orders["unshipped"], (story.products["mug"], 1)
    )
    problem(never, 409, "NOT_DELIVERED")
    assert (await story.shop.get(story.orders["unshipped"]))["returns"] == []


async def test_wrong_state_calls_are_409_invalid_state(story: Story) -> None:
    calls = story.calls
    for name, current in (
        ("deliver while PENDING", "PENDING"),
        ("ship twice", "SHIPPED"),
        ("deliver twice", "DELIVERED"),
        ("receive while REQUESTED", "REQUESTED"),
        ("approve twice", "APPROVED"),
    ):
        body = problem(calls[name], 409, "INVALID_STATE")
        assert body["currentStatus"] == current, (name, body)
    # Deciding a decided return, receiving a rejected one.
    plate = story.returns["plate"]["returnId"]
    for action in ("approve", "reject", "receive"):
        late = await story.shop.return_step(plate, action, story.shop.admin)
        assert problem(late, 409, "INVALID_STATE")["currentStatus"] == "REJECTED", action
    # One ShipmentDispatched and one ShipmentDelivered for all those calls.
    plain = story.orders["plain"]
    assert len(story.shop.events("ShipmentDispatched", plain)) == 1
    assert len(story.shop.events("ShipmentDelivered", plain)) == 1


async def test_another_customers_shipment_or_return_is_hidden(story: Story) -> None:
    calls = story.calls
    problem(calls["another's shipment"], 404, "SHIPMENT_NOT_FOUND")
    problem(calls["another's returns"], 404, "ORDER_NOT_FOUND")
    problem(calls["return of another's order"], 404, "ORDER_NOT_FOUND")
    # Bob's own shipment is his, Ann's list of returns does not show Bob's.
    bob_parcel = story.shipments["promo"]["shipmentId"]
    answer = await story.shop.client.get(
        f"/api/v1/shipments/{bob_parcel}", headers=story.ann.headers
    )
    problem(answer, 404, "SHIPMENT_NOT_FOUND")


async def test_customers_cannot_ship_approve_or_receive(story: Story) -> None:
    calls = story.calls
    for name in (
        "customer ships",
        "customer delivers",
        "customer lists shipments",
        "customer approves",
        "customer rejects",
        "customer receives",
        "customer lists returns",
        "manager receives",  # receiving is the Admin's
    ):
        problem(calls[name], 403, "FORBIDDEN")


# --- every new event, twice ---------------------------------------------------------------------


def consumed(service: str, type_: str) -> float:
    """Deliveries of `type_` that `service` finished (handled, or skipped as seen)."""
    return sum(
        REGISTRY.get_sample_value(
            "shop_events_consumed_total", {"service": service, "type": type_, "outcome": outcome}
        )
        or 0.0
        for outcome in ("ok", "duplicate")
    )


def kinds(items: list[dict[str, Any]]) -> Counter[tuple[str, str, str | None]]:
    return Counter((i["type"], i["channel"], i.get("entityId")) for i in items)


async def _state(story: Story) -> dict[str, Any]:
    shop = story.shop
    assert shop.sink is not None
    state: dict[str, Any] = {"mails": sorted((m.to[0], m.subject) for m in shop.sink.messages)}
    for name, headers in (("ann", story.ann.headers), ("bob", story.bob.headers)):
        state[f"{name} inbox"] = kinds(await inbox(shop, headers))
    state["manager inbox"] = kinds(await inbox(shop, shop.manager))
    for key, order_id in story.orders.items():
        state[f"{key} order"] = await shop.get(order_id)
        state[f"{key} timeline"] = await shop.timeline(order_id)
        state[f"{key} payment"] = ok(
            await shop.client.get(f"/api/v1/payments/{order_id}", headers=shop.admin)
        )
    for queue in ("shipments", "returns"):
        answer = await shop.client.get(
            f"/api/v1/{queue}", params={"limit": 100}, headers=shop.admin
        )
        state[queue] = ok(answer)["items"]
    for name, product_id in story.products.items():
        state[f"{name} stock"] = await shop.stock(product_id)
    return state


async def test_every_new_event_published_again_changes_nothing(story: Story, amqp_url: str) -> None:
    shop = story.shop

    async def delivered() -> bool:  # every email out: their NotificationSent are in
        items = [
            i
            for headers in (story.ann.headers, story.bob.headers, shop.manager)
            for i in await inbox(shop, headers)
        ]
        return all(i["status"] == "sent" for i in items)

    await eventually(delivered, what="every notification delivered")
    await shop.settle(1.0)
    before = await _state(story)
    seen = list(shop.probe.messages)
    copies = {m.message_id: m for m in seen if m.type in NEW_EVENTS}
    types = Counter(m.type for m in copies.values())
    assert all(types[t] for t in NEW_EVENTS), types

    # Who must have taken each copy before the state is compared again.
    wanted: Counter[tuple[str, str]] = Counter()
    for message in copies.values():
        assert message.type is not None
        for service in CONSUMERS[message.type]:
            if service in shop.apps:
                wanted[(service, message.type)] += 1
    start = {key: consumed(*key) for key in wanted}
    config = bus_config(shop.apps["order"].state.settings)
    connection = BusConnection(amqp_url, name=f"{config.prefix}e2e-replay")
    publisher = AmqpPublisher(connection, config)
    try:
        for message in copies.values():
            await publisher.publish(Envelope.from_json(message.body))
    finally:
        await publisher.close()
        await connection.close()
    await eventually(
        lambda: all(consumed(*key) - start[key] >= n for key, n in wanted.items()),
        timeout=60,
        what=f"every consumer to take its copies: {dict(wanted)}",
    )
    await shop.settle(1.5)
    after = await _state(story)
    for key, value in before.items():
        assert after[key] == value, key
    # Nothing reacted: no event the story had not produced already.
    ids = [json.loads(m.body)["id"] for m in shop.probe.messages]
    assert set(ids) == {json.loads(m.body)["id"] for m in seen}
    assert len(ids) == len(seen) + len(copies)
    # One shipment per order, one refund and one restock per received return.
    await shop.check_invariants(story.orders.values(), story.products.values())
    assert len(shop.distinct("ShipmentCreated")) == len(story.orders)
    received = [story.returns[k]["returnId"] for k in ("mug", "lamp", "rest")]
    for type_ in ("PaymentRefunded", "StockReturned"):
        assert sorted(e["data"]["returnId"] for e in shop.distinct(type_)) == sorted(received)
