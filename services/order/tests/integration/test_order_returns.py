"""After CONFIRMED, through the in-memory bus and the embedded store: the fulfilment kept from
shipping's events, and returns (request, approve or reject, receive, refund, restock, deadlines),
with the answers a customer and a Manager or Admin get, over HTTP too."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from order_service import commands
from order_service.bootstrap import bootstrap
from order_service.main import create_app
from order_service.settings import OrderSettings
from order_service.sweeper import DeadlineSweeper
from pymongo import AsyncMongoClient, monitoring

from bus.fake import InMemoryBus
from contracts import Envelope
from contracts.analytics import PromotionGranted
from contracts.inventory import StockCommitted, StockReserved, StockReturned
from contracts.order import (
    OrderConfirmed,
    ReturnApproved,
    ReturnReceived,
    ReturnRejected,
    ReturnRequested,
)
from contracts.payment import PaymentAuthorized, PaymentRefunded, PaymentRefundFailed
from contracts.shipping import ShipmentCreated, ShipmentDelivered, ShipmentDispatched
from contracts.types import Line
from kit.auth import use_static_keys
from kit.auth.signing import SigningKey, issue_access_token
from kit.errors import Problem

from .conftest import Clock, Wired, caller

pytestmark = pytest.mark.integration

MANAGER = caller("m1", "Manager")
ADMIN = caller("a1", "Admin")
CUSTOMER = caller()


async def refused(call: Awaitable[Any], status: int, code: str) -> Problem:
    with pytest.raises(Problem) as raised:
        await call
    assert (raised.value.status, raised.value.code) == (status, code)
    return raised.value


async def confirmed(
    wired: Wired, *, quantity: int = 2, price_cents: int = 1_999, promo: str | None = None
) -> str:
    """u1's order for `quantity` books, driven to CONFIRMED by inventory's and payment's answers."""
    await wired.customer()
    await wired.product(price_cents=price_cents)
    if promo is not None:
        expires = wired.clock.now + timedelta(days=1)
        await wired.deliver(
            PromotionGranted(
                user_id="u1", code=promo, percent_off=10, expires_at=expires, reason="loyal"
            )  # fmt: skip
        )
    items = (("book", quantity),)
    key = secrets.token_hex(4)
    order_id = (await wired.place(key, items, promo_code=promo)).order_id
    lines = (Line(product_id="book", quantity=quantity),)
    expires = wired.clock.now + timedelta(minutes=15)
    total = (await wired.order(order_id)).total_cents
    await wired.deliver(
        StockReserved(order_id=order_id, lines=lines, expires_at=expires),
        PaymentAuthorized(
            order_id=order_id, user_id="u1", payment_id="pay1", amount_cents=total, attempts=1
        ),
        StockCommitted(order_id=order_id, lines=lines),
        correlation_id=order_id,
    )
    assert (await wired.order(order_id)).status == "CONFIRMED"
    return order_id


async def delivered(wired: Wired, order_id: str) -> None:
    now = wired.clock.now
    await wired.deliver(
        ShipmentCreated(
            shipment_id="s1",
            order_id=order_id,
            user_id="u1",
            lines=(Line(product_id="book", quantity=2),),
        ),  # fmt: skip
        ShipmentDispatched(
            shipment_id="s1",
            order_id=order_id,
            user_id="u1",
            carrier="sandbox",
            tracking_number="TRK1",
            shipped_at=now,
        ),  # fmt: skip
        ShipmentDelivered(shipment_id="s1", order_id=order_id, user_id="u1", delivered_at=now),
        correlation_id=order_id,
    )


async def ask(wired: Wired, order_id: str, quantity: int = 1, key: str | None = None) -> str:
    _, ret = await commands.request_return(
        wired.deps, CUSTOMER, order_id, (("book", quantity),), "too big", key
    )
    return ret.return_id


async def received(wired: Wired, order_id: str, quantity: int = 1) -> str:
    return_id = await ask(wired, order_id, quantity)
    await commands.approve_return(wired.deps, MANAGER, return_id, "ok")
    await commands.receive_return(wired.deps, ADMIN, return_id)
    return return_id


def refunded(order_id: str, return_id: str, amount: int) -> PaymentRefunded:
    return PaymentRefunded(
        order_id=order_id, user_id="u1", payment_id="pay1", amount_cents=amount,
        return_id=return_id,
    )  # fmt: skip


# --- the confirmation and the fulfilment ------------------------------------------------------


async def test_order_confirmed_carries_the_address_for_shipping(wired: Wired) -> None:
    order_id = await confirmed(wired)
    (event,) = wired.bus.of_type(OrderConfirmed)
    assert event.data.address is not None
    assert (event.data.address.address_id, event.data.address.city) == ("a1", "Paris")
    assert [(i.product_id, i.quantity) for i in event.data.items] == [("book", 2)]
    # Checkout's document is as it was: nothing of fulfilment or returns until there is some.
    stored = await wired.deps.db["orders"].find_one({"_id": order_id})
    assert stored is not None
    assert not {"fulfilment", "returns", "refunded_cents"} & set(stored)


async def test_shipment_events_keep_the_fulfilment_and_duplicates_change_nothing(
    wired: Wired,
) -> None:
    order_id = await confirmed(wired)
    delivered_at = wired.clock.now
    arrived = Envelope.wrap(
        ShipmentDelivered(
            shipment_id="s1", order_id=order_id, user_id="u1", delivered_at=delivered_at
        ),  # fmt: skip
        correlation_id=order_id,
    )
    await wired.bus.publish(arrived)  # delivered first: out of order
    await wired.bus.deliver()
    await delivered(wired, order_id)
    order = await wired.order(order_id)
    assert order.status == "CONFIRMED" and order.fulfilment is not None
    assert (order.fulfilment.status, order.fulfilment.tracking_number) == ("DELIVERED", "TRK1")
    steps = [e.step for e in order.timeline if e.service == "shipping"]
    assert steps == ["shipmentDelivered", "shipmentCreated", "shipmentDispatched"]
    # Re-published (the same envelope, and the same facts in new ones): nothing moves.
    await wired.bus.publish(arrived)
    await wired.bus.deliver()
    await delivered(wired, order_id)
    again = await wired.order(order_id)
    assert (again.version, again.timeline) == (order.version, order.timeline)
    view = (await commands.get_order(wired.deps, CUSTOMER, order_id)).fulfilment
    assert view is not None and view.shipment_id == "s1"


# --- a return, all the way --------------------------------------------------------------------


async def test_a_return_is_approved_received_refunded_and_restocked_once(wired: Wired) -> None:
    order_id = await confirmed(wired)
    await refused(ask(wired, order_id), 409, "NOT_DELIVERED")
    await delivered(wired, order_id)
    return_id = await ask(wired, order_id)
    (requested,) = wired.bus.of_type(ReturnRequested)
    assert (requested.data.refund_cents, requested.actor.user_id) == (1_999, "u1")
    assert requested.correlation_id == order_id

    await refused(commands.approve_return(wired.deps, CUSTOMER, return_id, "x"), 403, "FORBIDDEN")
    await refused(commands.approve_return(wired.deps, MANAGER, "r?", "x"), 404, "RETURN_NOT_FOUND")
    await refused(commands.receive_return(wired.deps, ADMIN, return_id), 409, "INVALID_STATE")
    _, ret = await commands.approve_return(wired.deps, MANAGER, return_id, "ok")
    assert ret.status == "APPROVED"
    problem = await refused(
        commands.approve_return(wired.deps, MANAGER, return_id, "x"), 409, "INVALID_STATE"
    )
    assert problem.extra["currentStatus"] == "APPROVED"
    await refused(commands.receive_return(wired.deps, MANAGER, return_id), 403, "FORBIDDEN")
    _, ret = await commands.receive_return(wired.deps, ADMIN, return_id)
    assert ret.status == "RECEIVED"
    (receipt,) = wired.bus.of_type(ReturnReceived)
    assert (receipt.data.refund_cents, receipt.data.payment_id) == (1_999, "pay1")
    assert receipt.data.lines == (Line(product_id="book", quantity=1),)
    assert (receipt.actor.user_id, receipt.actor.role) == ("a1", "Admin")

    refund = Envelope.wrap(refunded(order_id, return_id, 1_999), correlation_id=order_id)
    restock = StockReturned(return_id=return_id, order_id=order_id, lines=receipt.data.lines)
    await wired.bus.publish(refund)
    await wired.deliver(restock, correlation_id=order_id)
    order = await wired.order(order_id)
    (ret,) = order.returns
    assert (ret.status, ret.refunded_cents, order.refunded_cents) == ("REFUNDED", 1_999, 1_999)
    assert ret.restocked_at is not None and order.deadline is None
    # Every answer again (the same envelope, new envelopes): exactly once.
    await wired.bus.publish(refund)
    await wired.deliver(refunded(order_id, return_id, 1_999), restock, correlation_id=order_id)
    again = await wired.order(order_id)
    assert (again.version, again.refunded_cents) == (order.version, 1_999)
    actions = [(a.action, a.role, a.return_status) for a in order.audit_logs if a.return_id]
    assert actions == [
        ("requestReturn", "Customer", "REQUESTED"),
        ("approveReturn", "Manager", "APPROVED"),
        ("receiveReturn", "Admin", "RECEIVED"),
        ("refundReturn", "system", "REFUNDED"),
    ]
    assert len(wired.bus.of_type(ReturnApproved)) == 1


async def test_a_promoted_order_refunds_the_discounted_line(wired: Wired) -> None:
    order_id = await confirmed(wired, price_cents=1_000, promo="SAVE10")
    assert (await wired.order(order_id)).total_cents == 1_800
    await delivered(wired, order_id)
    await ask(wired, order_id)
    assert wired.bus.of_type(ReturnRequested)[-1].data.refund_cents == 900


async def test_returns_are_bounded_by_what_was_delivered(wired: Wired) -> None:
    order_id = await confirmed(wired)
    await delivered(wired, order_id)
    first = await ask(wired, order_id)
    problem = await refused(ask(wired, order_id, 2), 422, "RETURN_QUANTITY_EXCEEDED")
    assert (problem.extra["productId"], problem.extra["returnable"]) == ("book", 1)
    await refused(
        commands.request_return(wired.deps, CUSTOMER, order_id, (("pen", 1),), "x"),
        422,
        "UNKNOWN_PRODUCT",
    )
    # A rejected return refunds nothing and gives its unit back.
    _, ret = await commands.reject_return(wired.deps, MANAGER, first, "worn")
    assert ret.status == "REJECTED"
    (rejected,) = wired.bus.of_type(ReturnRejected)
    assert (rejected.data.decided_by, rejected.data.reason) == ("m1", "worn")
    await ask(wired, order_id, 2)
    assert (await wired.order(order_id)).refunded_cents == 0


async def test_a_double_click_never_returns_more_than_was_delivered(wired: Wired) -> None:
    order_id = await confirmed(wired)
    await delivered(wired, order_id)
    outcomes = await asyncio.gather(
        ask(wired, order_id, 2), ask(wired, order_id, 2), return_exceptions=True
    )
    assert sorted(type(o).__name__ for o in outcomes) == ["Problem", "str"]
    assert len((await wired.order(order_id)).returns) == 1
    # With an Idempotency-Key a replay answers the first return, whatever the race.
    other = await confirmed(wired)
    await delivered(wired, other)
    first, second = await asyncio.gather(
        ask(wired, other, 1, key="k1"), ask(wired, other, 1, key="k1")
    )
    assert first == second and len((await wired.order(other)).returns) == 1
    await refused(ask(wired, other, 2, key="k1"), 422, "IDEMPOTENCY_KEY_REUSED")


async def test_only_the_customer_asks_and_another_customer_sees_nothing(wired: Wired) -> None:
    order_id = await confirmed(wired)
    await delivered(wired, order_id)
    stranger = caller("u2")
    for who, status, code in ((stranger, 404, "ORDER_NOT_FOUND"), (MANAGER, 403, "FORBIDDEN")):
        call = commands.request_return(wired.deps, who, order_id, (("book", 1),), "x")
        await refused(call, status, code)
    await ask(wired, order_id)
    await refused(commands.order_returns(wired.deps, stranger, order_id), 404, "ORDER_NOT_FOUND")
    assert len((await commands.order_returns(wired.deps, MANAGER, order_id)).returns) == 1


async def test_the_return_window_closes_on_the_service_clock(wired: Wired) -> None:
    order_id = await confirmed(wired)
    await delivered(wired, order_id)
    wired.clock.advance(days=30)
    await ask(wired, order_id)
    wired.clock.advance(seconds=1)
    problem = await refused(ask(wired, order_id), 409, "RETURN_WINDOW_CLOSED")
    assert problem.body()["closedAt"] == (wired.clock.now - timedelta(seconds=1)).isoformat()


# --- answers from payment and the deadlines ---------------------------------------------------


def sweeper(wired: Wired) -> DeadlineSweeper:
    return DeadlineSweeper(wired.deps, interval=60, lease_seconds=30, holder="t")


async def test_an_approved_return_never_received_is_rejected_by_the_sweeper(wired: Wired) -> None:
    order_id = await confirmed(wired)
    await delivered(wired, order_id)
    return_id = await ask(wired, order_id)
    await commands.approve_return(wired.deps, MANAGER, return_id, "ok")
    sweep = sweeper(wired)
    wired.clock.advance(days=29)
    assert await sweep.run_once() == 0
    wired.clock.advance(days=1)
    assert await sweep.run_once() == 1
    (ret,) = (await wired.order(order_id)).returns
    assert (ret.status, ret.rejection_reason) == ("REJECTED", "NOT_RECEIVED")
    (rejected,) = wired.bus.of_type(ReturnRejected)
    assert (rejected.data.decided_by, rejected.actor.role) == ("system", "system")
    wired.clock.advance(days=1)
    assert await sweep.run_once() == 0
    await refused(commands.receive_return(wired.deps, ADMIN, return_id), 409, "INVALID_STATE")


async def test_a_refund_never_answered_is_refund_failed_for_a_person(wired: Wired) -> None:
    order_id = await confirmed(wired)
    await delivered(wired, order_id)
    return_id = await received(wired, order_id)
    sweep = sweeper(wired)
    wired.clock.advance(seconds=899)
    assert await sweep.run_once() == 0
    wired.clock.advance(seconds=1)
    assert await sweep.run_once() == 1
    rows, _ = await commands.list_returns(wired.deps, status="REFUND_FAILED", limit=10, cursor=None)
    assert [(r.order_id, r.ret.return_id, r.ret.failure_reason) for r in rows] == [
        (order_id, return_id, "REFUND_TIMEOUT")
    ]
    # The money moved after all: REFUNDED, counted once.
    await wired.deliver(refunded(order_id, return_id, 1_999), correlation_id=order_id)
    order = await wired.order(order_id)
    assert (order.returns[0].status, order.refunded_cents) == ("REFUNDED", 1_999)


async def test_a_refused_refund_is_refund_failed_with_the_providers_reason(wired: Wired) -> None:
    order_id = await confirmed(wired)
    await delivered(wired, order_id)
    return_id = await received(wired, order_id)
    failed = PaymentRefundFailed(
        order_id=order_id, user_id="u1", payment_id="pay1", amount_cents=1_999,
        return_id=return_id, reason="provider_declined",
    )  # fmt: skip
    await wired.deliver(failed, failed, correlation_id=order_id)
    order = await wired.order(order_id)
    (ret,) = order.returns
    assert (ret.status, ret.failure_reason, order.deadline) == (
        "REFUND_FAILED",
        "provider_declined",
        None,
    )
    assert sum(1 for e in order.timeline if e.step == "returnRefundFailed") == 1


async def test_the_returns_queue_lists_newest_first_by_status_page_by_page(wired: Wired) -> None:
    ids = []
    for _ in range(3):
        order_id = await confirmed(wired)
        await delivered(wired, order_id)
        wired.clock.advance(seconds=1)
        ids.append(await ask(wired, order_id))
    await commands.approve_return(wired.deps, MANAGER, ids[0], "ok")
    first, cursor = await commands.list_returns(wired.deps, status=None, limit=2, cursor=None)
    rest, last = await commands.list_returns(wired.deps, status=None, limit=2, cursor=cursor)
    assert [r.ret.return_id for r in first + rest] == ids[::-1] and last is None
    waiting, _ = await commands.list_returns(wired.deps, status="REQUESTED", limit=10, cursor=None)
    assert [r.ret.return_id for r in waiting] == [ids[2], ids[1]]
    approved, _ = await commands.list_returns(wired.deps, status="APPROVED", limit=10, cursor=None)
    assert [r.ret.return_id for r in approved] == [ids[0]]


# --- round trips: checkout pays nothing for returns -------------------------------------------


class Commands(monitoring.CommandListener):
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        target = event.command.get(event.command_name)
        self.sent.append((event.command_name, target if isinstance(target, str) else ""))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def test_confirming_and_sweeping_cost_what_they_did(mongo_url: str, db_name: str) -> None:
    listener = Commands()
    client: AsyncMongoClient[Any] = AsyncMongoClient(
        mongo_url, tz_aware=True, event_listeners=[listener]
    )
    bus, clock = InMemoryBus(), Clock()
    deps = bootstrap(OrderSettings(mongo_db=db_name), mongo=client, bus=bus, clock=clock)
    wired = Wired(deps, bus, clock)
    try:
        order_id = await confirmed(wired)
        listener.sent.clear()
        await wired.deliver(
            ShipmentCreated(shipment_id="s1", order_id=order_id, user_id="u1", lines=()),
            correlation_id=order_id,
        )  # a saga step after CONFIRMED: one read, one conditional update
        assert listener.sent == [("find", "orders"), ("update", "orders")]
        listener.sent.clear()
        # A pass is one query for every wait; a CONFIRMED order without returns is not due.
        assert await sweeper(wired).sweep(wired.clock.now + timedelta(days=365)) == 0
        assert [c for c in listener.sent if c[1] == "orders"] == [("find", "orders")]
    finally:
        await deps.close()
        await client.drop_database(db_name)
        await client.close()


# --- over HTTP --------------------------------------------------------------------------------


@pytest.fixture
async def http(wired: Wired) -> AsyncIterator[tuple[httpx.AsyncClient, SigningKey]]:
    app = create_app(wired.deps.settings)
    app.state.deps = wired.deps
    key = SigningKey.generate()
    use_static_keys(app, key)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://order") as client:
        yield client, key


def bearer(key: SigningKey, user_id: str, role: str, wired: Wired) -> dict[str, str]:
    settings = wired.deps.settings
    token = issue_access_token(key, user_id, role, settings.jwt_issuer, settings.jwt_audience)
    return {"Authorization": f"Bearer {token}"}


async def test_the_routes_answer_as_api_md_says(
    wired: Wired, http: tuple[httpx.AsyncClient, SigningKey]
) -> None:
    client, key = http
    customer = bearer(key, "u1", "Customer", wired)
    manager = bearer(key, "m1", "Manager", wired)
    admin = bearer(key, "a1", "Admin", wired)
    order_id = await confirmed(wired)
    body = {"items": [{"productId": "book", "quantity": 1}], "reason": "too big"}
    path = f"/api/v1/orders/{order_id}/returns"
    answer = await client.post(path, json=body, headers=customer)
    assert (answer.status_code, answer.json()["code"]) == (409, "NOT_DELIVERED")
    await delivered(wired, order_id)
    assert (await client.post(path, json=body, headers=manager)).status_code == 403
    strange = {**body, "extra": 1}
    assert (await client.post(path, json=strange, headers=customer)).status_code == 422
    answer = await client.post(path, json=body, headers=customer)
    assert answer.status_code == 201
    made = answer.json()
    assert {k: made[k] for k in ("orderId", "status", "refundCents", "reason")} == {
        "orderId": order_id,
        "status": "REQUESTED",
        "refundCents": 1_999,
        "reason": "too big",
    }
    assert made["items"] == [{"productId": "book", "quantity": 1}] and made["createdAt"]
    return_id = made["returnId"]

    listed = await client.get(path, headers=customer)
    assert [r["returnId"] for r in listed.json()["items"]] == [return_id]
    queue = await client.get("/api/v1/returns", params={"status": "REQUESTED"}, headers=manager)
    assert [r["returnId"] for r in queue.json()["items"]] == [return_id]
    assert queue.json()["nextCursor"] is None
    assert (await client.get("/api/v1/returns", headers=customer)).status_code == 403

    approve = f"/api/v1/returns/{return_id}/approve"
    assert (await client.post(approve, json={"reason": "ok"}, headers=customer)).status_code == 403
    answer = await client.post(approve, json={"reason": "ok"}, headers=manager)
    assert (answer.status_code, answer.json()["status"]) == (200, "APPROVED")
    answer = await client.post(approve, json={"reason": "ok"}, headers=manager)
    assert (answer.status_code, answer.json()["code"]) == (409, "INVALID_STATE")
    assert answer.json()["currentStatus"] == "APPROVED"
    receive = f"/api/v1/returns/{return_id}/receive"
    assert (await client.post(receive, headers=manager)).status_code == 403
    answer = await client.post(receive, headers=admin)
    assert (answer.status_code, answer.json()["status"]) == (200, "RECEIVED")
    missing = await client.post("/api/v1/returns/nope/reject", json={"reason": "x"}, headers=admin)
    assert (missing.status_code, missing.json()["code"]) == (404, "RETURN_NOT_FOUND")

    await wired.deliver(refunded(order_id, return_id, 1_999), correlation_id=order_id)
    order = (await client.get(f"/api/v1/orders/{order_id}", headers=customer)).json()
    assert order["status"] == "CONFIRMED" and order["refundedCents"] == 1_999
    assert order["fulfilment"]["status"] == "DELIVERED"
    assert order["fulfilment"]["trackingNumber"] == "TRK1"
    assert [(r["returnId"], r["status"]) for r in order["returns"]] == [(return_id, "REFUNDED")]
    stranger = bearer(key, "u2", "Customer", wired)
    answer = await client.post(path, json=body, headers=stranger)
    assert (answer.status_code, answer.json()["code"]) == (404, "ORDER_NOT_FOUND")
