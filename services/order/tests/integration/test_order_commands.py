"""The order service's commands and handlers through the in-memory bus and the embedded store:
what a customer or a Manager sees (statuses, money, answers) and what the saga hears (events)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from datetime import timedelta
from typing import Any

import pytest
from order_service import commands
from order_service.bootstrap import bootstrap
from order_service.handlers import HANDLERS
from order_service.schemas import PlaceBody, Placed
from order_service.settings import OrderSettings
from order_service.store import request_hash
from pymongo import AsyncMongoClient, monitoring

from bus.fake import InMemoryBus
from contracts import Envelope
from contracts.analytics import PromotionGranted
from contracts.inventory import (
    StockCommitted,
    StockPartiallyReserved,
    StockReleased,
    StockReserved,
)
from contracts.order import (
    OrderApproved,
    OrderCancelled,
    OrderConfirmed,
    OrderPaid,
    OrderPlaced,
    OrderRejected,
    PaymentRequested,
    PromotionRedeemed,
)
from contracts.payment import (
    PaymentAuthorized,
    PaymentCaptured,
    PaymentFailed,
    PaymentReviewRequired,
)
from contracts.types import Line, MissingLine
from kit.errors import Problem

from .conftest import Clock, Wired, caller

pytestmark = pytest.mark.integration

MANAGER = caller("m1", "Manager")
ADMIN = caller("a1", "Admin")


async def refused(call: Awaitable[Any], status: int, code: str) -> Problem:
    with pytest.raises(Problem) as raised:
        await call
    assert (raised.value.status, raised.value.code) == (status, code)
    return raised.value


async def placed(wired: Wired, *, price_cents: int = 1_999, partial: str = "ask") -> str:
    """A customer with a complete profile places two units of a book; the order's id."""
    await wired.customer(partial=partial)
    await wired.product(price_cents=price_cents)
    return (await wired.place()).order_id


async def reserved(wired: Wired, order_id: str, quantity: int = 2) -> None:
    expires = wired.clock.now + timedelta(minutes=15)
    lines = (Line(product_id="book", quantity=quantity),)
    await wired.deliver(StockReserved(order_id=order_id, lines=lines, expires_at=expires))


async def payment_failed(wired: Wired, order_id: str) -> None:
    failed = PaymentFailed(
        order_id=order_id, user_id="u1", payment_id="p1", reason="declined", attempts=1,
        retryable=True,
    )  # fmt: skip
    await wired.deliver(failed)


# --- placing ----------------------------------------------------------------------------------


async def test_the_same_key_twice_places_one_order_with_one_order_placed(wired: Wired) -> None:
    await wired.customer()
    await wired.product()
    first = await wired.place("k1")
    again = await wired.place("k1")
    assert again.order_id == first.order_id
    assert Placed.model_validate(again.response) == Placed(
        order_id=first.order_id, status="PENDING"
    )
    assert [e.data.order_id for e in wired.bus.of_type(OrderPlaced)] == [first.order_id]
    assert await wired.deps.db["orders"].count_documents({}) == 1
    order = await wired.order(first.order_id)
    assert (order.total_cents, order.address_id, order.payment.method_id) == (3_998, "a1", "pm1")


async def test_two_first_uses_of_a_key_racing_place_one_order(wired: Wired) -> None:
    await wired.customer()
    await wired.product()
    first, second = await asyncio.gather(wired.place("k1"), wired.place("k1"))
    assert first.order_id == second.order_id
    assert await wired.deps.db["orders"].count_documents({}) == 1
    assert len(wired.bus.of_type(OrderPlaced)) == 1


async def test_a_key_reused_for_another_body_or_missing_is_refused(wired: Wired) -> None:
    await wired.customer()
    await wired.product()
    await wired.place("k1")
    await refused(wired.place("k1", (("book", 3),)), 422, "IDEMPOTENCY_KEY_REUSED")
    await refused(wired.place("  "), 422, "IDEMPOTENCY_KEY_REQUIRED")
    assert await wired.deps.db["orders"].count_documents({}) == 1
    assert len(wired.bus.of_type(OrderPlaced)) == 1


def test_a_key_is_remembered_with_the_hash_of_the_parsed_body() -> None:
    # Keys outlive a deploy (24 h): the hash must stay the one of the request body as parsed.
    body = PlaceBody.model_validate(
        {"items": [{"productId": "book", "quantity": 2}], "promoCode": " SAVE10 "}
    )
    new = commands.NewOrder((("book", 2),), promo_code="SAVE10")
    assert new.request_hash() == request_hash(body.model_dump(mode="json"))


async def test_a_promotion_discounts_one_order_only(wired: Wired) -> None:
    await wired.customer()
    await wired.product(price_cents=1_000)
    expires = wired.clock.now + timedelta(days=1)
    grant = PromotionGranted(
        user_id="u1", code="SAVE10", percent_off=10, expires_at=expires, reason="loyal"
    )
    await wired.deliver(grant)
    first = await wired.place("k1", promo_code="SAVE10")
    order = await wired.order(first.order_id)
    assert (order.subtotal_cents, order.discount_cents, order.total_cents) == (2_000, 200, 1_800)
    assert [e.data.order_id for e in wired.bus.of_type(PromotionRedeemed)] == [first.order_id]
    await refused(wired.place("k2", promo_code="SAVE10"), 422, "INVALID_PROMO_CODE")
    assert await wired.deps.db["orders"].count_documents({}) == 1


async def test_an_unknown_customer_or_product_places_nothing(wired: Wired) -> None:
    problem = await refused(wired.place("k1"), 409, "PROFILE_INCOMPLETE")
    assert problem.extra["missing"] == ["address", "paymentMethod"]
    await wired.customer()
    await wired.product()
    await refused(wired.place("k2", address_id="a9"), 422, "UNKNOWN_ADDRESS")
    await refused(wired.place("k3", (("book", 101),)), 422, "INVALID_QUANTITY")
    assert wired.bus.of_type(OrderPlaced) == []


# --- the saga ---------------------------------------------------------------------------------


async def test_reserved_paid_committed_confirms_the_order(wired: Wired) -> None:
    order_id = await placed(wired)
    await reserved(wired, order_id)
    assert (await wired.order(order_id)).status == "AWAITING_PAYMENT"
    (request,) = wired.bus.of_type(PaymentRequested)
    assert (request.data.amount_cents, request.data.payment_method_id) == (3_998, "pm1")
    authorized = PaymentAuthorized(
        order_id=order_id, user_id="u1", payment_id="p1", amount_cents=3_998, attempts=1
    )
    await wired.deliver(authorized)
    assert (await wired.order(order_id)).status == "PAID"
    (paid,) = wired.bus.of_type(OrderPaid)
    assert paid.data.lines == (Line(product_id="book", quantity=2),)
    await wired.deliver(StockCommitted(order_id=order_id, lines=paid.data.lines))
    assert (await wired.order(order_id)).status == "CONFIRMED"
    assert len(wired.bus.of_type(OrderConfirmed)) == 1


async def test_a_saga_step_run_twice_changes_nothing(wired: Wired) -> None:
    order_id = await placed(wired)
    expires = wired.clock.now + timedelta(minutes=15)
    event = StockReserved(
        order_id=order_id, lines=(Line(product_id="book", quantity=2),), expires_at=expires
    )
    envelope = Envelope.wrap(event, correlation_id=order_id)
    await wired.bus.publish(envelope)
    await wired.bus.deliver()
    after_first = await wired.order(order_id)
    published = len(wired.bus.published)

    # The same envelope redelivered to a fresh consumer (its inbox forgot it): the order knows.
    redelivery = InMemoryBus()
    redelivery.attach(HANDLERS, wired.deps)
    assert await redelivery.dispatch(envelope) == []
    # The same answer in another envelope: a late duplicate, nothing moves.
    await wired.deliver(event, correlation_id=order_id)

    again = await wired.order(order_id)
    assert (again.status, again.version) == ("AWAITING_PAYMENT", after_first.version)
    assert again.timeline == after_first.timeline
    assert len(wired.bus.published) == published + 1  # the duplicate itself, nothing emitted
    assert redelivery.published == []
    assert len(wired.bus.of_type(PaymentRequested)) == 1


async def test_a_flagged_payment_waits_for_review_and_an_expired_hold_cancels(
    wired: Wired,
) -> None:
    order_id = await placed(wired)
    await reserved(wired, order_id)
    await wired.deliver(PaymentReviewRequired(order_id=order_id, user_id="u1", fraud_score=0.9))
    order = await wired.order(order_id)
    assert (order.status, order.fraud_flag, order.approval_reason) == (
        "AWAITING_APPROVAL",
        True,
        "fraud",
    )
    lines = (Line(product_id="book", quantity=2),)
    await wired.deliver(StockReleased(order_id=order_id, lines=lines, reason="expired"))
    order = await wired.order(order_id)
    assert (order.status, order.cancel_reason) == ("CANCELLED", "APPROVAL_TIMEOUT")
    assert [e.data.reason for e in wired.bus.of_type(OrderCancelled)] == ["APPROVAL_TIMEOUT"]


async def test_a_settlement_is_a_timeline_note_and_a_late_one_changes_nothing(
    wired: Wired,
) -> None:
    order_id = await placed(wired)
    await commands.cancel(wired.deps, caller(), order_id, None)
    captured = PaymentCaptured(order_id=order_id, user_id="u1", payment_id="p1", amount_cents=1)
    await wired.deliver(captured)
    order = await wired.order(order_id)
    assert order.status == "CANCELLED" and order.timeline[-1].step == "paymentCaptured"
    # A late authorization after the cancel: nothing is paid, nothing emitted.
    late = PaymentAuthorized(
        order_id=order_id, user_id="u1", payment_id="p1", amount_cents=3_998, attempts=1
    )
    await wired.deliver(late)
    assert (await wired.order(order_id)).version == order.version
    assert wired.bus.of_type(OrderPaid) == []


async def test_an_order_of_high_value_waits_for_a_manager(wired: Wired) -> None:
    first = await placed(wired, price_cents=300_000)
    await reserved(wired, first)
    assert (await wired.order(first)).status == "AWAITING_APPROVAL"
    await refused(commands.approve(wired.deps, caller(), first, "ok"), 403, "FORBIDDEN")
    approved = await commands.approve(wired.deps, MANAGER, first, "known customer")
    assert approved.status == "AWAITING_PAYMENT" and approved.review_passed
    assert [e.data.approved_by for e in wired.bus.of_type(OrderApproved)] == ["m1"]
    assert wired.bus.of_type(PaymentRequested)[-1].data.order_id == first
    problem = await refused(commands.approve(wired.deps, MANAGER, first, "x"), 409, "INVALID_STATE")
    assert problem.extra["currentStatus"] == "AWAITING_PAYMENT"

    second = (await wired.place("k2")).order_id
    await reserved(wired, second)
    rejected = await commands.reject(wired.deps, MANAGER, second, "too much")
    assert (rejected.status, rejected.rejection_reason) == ("REJECTED", "MANAGER_REJECTED")
    assert [e.data.order_id for e in wired.bus.of_type(OrderRejected)] == [second]


async def test_a_partial_reservation_waits_for_the_customers_decision(wired: Wired) -> None:
    order_id = await placed(wired)
    partial = StockPartiallyReserved(
        order_id=order_id,
        user_id="u1",
        reserved=(Line(product_id="book", quantity=1),),
        missing=(MissingLine(product_id="book", requested=2, available=1),),
        expires_at=wired.clock.now + timedelta(minutes=15),
    )
    await wired.deliver(partial)
    assert (await wired.order(order_id)).status == "AWAITING_CUSTOMER_DECISION"
    await refused(commands.decide(wired.deps, MANAGER, order_id, True), 403, "FORBIDDEN")
    order = await commands.decide(wired.deps, caller(), order_id, True)
    assert (order.status, order.total_cents, order.partial_fulfillment) == (
        "AWAITING_PAYMENT",
        1_999,
        True,
    )
    assert wired.bus.of_type(PaymentRequested)[-1].data.amount_cents == 1_999


# --- a customer's or staff member's change ----------------------------------------------------


async def test_cancel_by_the_customer_then_again_is_invalid_state(wired: Wired) -> None:
    order_id = await placed(wired)
    await refused(commands.cancel(wired.deps, MANAGER, order_id, None), 403, "FORBIDDEN")
    await refused(commands.cancel(wired.deps, caller("u2"), order_id, None), 404, "ORDER_NOT_FOUND")
    order = await commands.cancel(wired.deps, caller(), order_id, "changed my mind")
    assert (order.status, order.cancel_reason) == ("CANCELLED", "CUSTOMER")
    (event,) = wired.bus.of_type(OrderCancelled)
    assert (event.data.order_id, event.actor.user_id) == (order_id, "u1")
    problem = await refused(
        commands.cancel(wired.deps, caller(), order_id, None), 409, "INVALID_STATE"
    )
    assert problem.extra["currentStatus"] == "CANCELLED"
    assert len(wired.bus.of_type(OrderCancelled)) == 1


async def test_a_paid_order_is_cancelled_by_an_admin_only(wired: Wired) -> None:
    order_id = await placed(wired)
    await reserved(wired, order_id)
    authorized = PaymentAuthorized(
        order_id=order_id, user_id="u1", payment_id="p1", amount_cents=3_998, attempts=1
    )
    await wired.deliver(authorized)
    await refused(commands.cancel(wired.deps, caller(), order_id, None), 409, "INVALID_STATE")
    order = await commands.cancel(wired.deps, ADMIN, order_id, "fraud")
    assert (order.status, order.cancel_reason) == ("CANCELLED", "ADMIN")


async def test_retry_payment_with_another_card_until_the_limit(wired: Wired) -> None:
    order_id = await placed(wired)
    await reserved(wired, order_id)
    await refused(
        commands.retry_payment(wired.deps, caller(), order_id, None), 409, "INVALID_STATE"
    )
    await payment_failed(wired, order_id)
    await refused(
        commands.retry_payment(wired.deps, caller(), order_id, "pm9"), 422, "UNKNOWN_PAYMENT_METHOD"
    )
    order = await commands.retry_payment(wired.deps, caller(), order_id, "pm2")
    assert (order.status, order.payment.method_id) == ("AWAITING_PAYMENT", "pm2")
    request = wired.bus.of_type(PaymentRequested)[-1].data
    assert (request.payment_method_id, request.attempt) == ("pm2", 2)
    await payment_failed(wired, order_id)
    await commands.retry_payment(wired.deps, caller(), order_id, None)
    await payment_failed(wired, order_id)
    # The fixture's settings allow two retries per order.
    problem = await refused(
        commands.retry_payment(wired.deps, caller(), order_id, None), 409, "RETRY_LIMIT_REACHED"
    )
    assert problem.extra["limit"] == 2
    assert (await wired.order(order_id)).status == "PAYMENT_FAILED"


async def test_the_payment_window_closes_on_the_service_clock(wired: Wired) -> None:
    order_id = await placed(wired)
    await reserved(wired, order_id)
    await payment_failed(wired, order_id)
    wired.clock.advance(minutes=16)
    await refused(
        commands.retry_payment(wired.deps, caller(), order_id, None), 409, "INVALID_STATE"
    )
    assert await commands.close_overdue(wired.deps, order_id, wired.clock.now)
    order = await wired.order(order_id)
    assert (order.status, order.cancel_reason) == ("CANCELLED", "PAYMENT_FAILED")
    assert not await commands.close_overdue(wired.deps, order_id, wired.clock.now)
    assert len(wired.bus.of_type(OrderCancelled)) == 1


# --- reads ------------------------------------------------------------------------------------


async def test_a_customer_sees_only_their_orders_and_staff_see_all(wired: Wired) -> None:
    order_id = await placed(wired)
    for key in ("k2", "k3"):
        wired.clock.advance(seconds=1)
        await wired.place(key)
    await refused(commands.get_order(wired.deps, caller("u2"), order_id), 404, "ORDER_NOT_FOUND")
    assert (await commands.get_order(wired.deps, MANAGER, order_id)).order_id == order_id
    mine, cursor = await commands.list_orders(
        wired.deps, caller(), status=None, user_id=None, limit=2, cursor=None
    )
    rest, last = await commands.list_orders(
        wired.deps, caller(), status=None, user_id=None, limit=2, cursor=cursor
    )
    assert len(mine) == 2 and cursor is not None and last is None
    assert [o.order_id for o in rest] == [order_id]  # newest first: the first order comes last
    theirs, _ = await commands.list_orders(
        wired.deps, caller("u2"), status=None, user_id="u1", limit=10, cursor=None
    )
    assert theirs == []  # a Customer's filter is always their own id
    steps = [e.step for e in await commands.timeline(wired.deps, MANAGER, order_id)]
    assert steps == ["place"]


# --- round trips ------------------------------------------------------------------------------


class Commands(monitoring.CommandListener):
    """The commands the service sends, as (command, collection)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        target = event.command.get(event.command_name)
        self.sent.append((event.command_name, target if isinstance(target, str) else ""))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    def take(self) -> list[tuple[str, str]]:
        sent, self.sent = self.sent, []
        return sent


@pytest.fixture
async def counted(mongo_url: str, db_name: str) -> AsyncIterator[tuple[Wired, Commands]]:
    listener = Commands()
    client: AsyncMongoClient[Any] = AsyncMongoClient(
        mongo_url, tz_aware=True, event_listeners=[listener]
    )
    bus, clock = InMemoryBus(), Clock()
    deps = bootstrap(OrderSettings(mongo_db=db_name), mongo=client, bus=bus, clock=clock)
    try:
        yield Wired(deps, bus, clock), listener
    finally:
        await deps.close()
        await client.drop_database(db_name)
        await client.close()


async def test_an_order_costs_the_round_trips_it_did(counted: tuple[Wired, Commands]) -> None:
    wired, sent = counted
    await wired.customer()
    await wired.product()
    sent.take()
    order_id = (await wired.place("k1")).order_id
    assert sent.take() == [
        ("find", "idempotency_keys"),  # the key's earlier use
        ("find", "user_replicas"),
        ("find", "product_replicas"),
        ("find", "idempotency_keys"),  # in the transaction: the key, the order, commit
        ("insert", "idempotency_keys"),
        ("insert", "orders"),
        ("commitTransaction", ""),
    ]
    await reserved(wired, order_id)  # a saga step: one read, one conditional update
    assert sent.take() == [("find", "orders"), ("update", "orders")]
    await commands.cancel(wired.deps, caller(), order_id, None)  # a change: one transaction
    assert sent.take() == [("find", "orders"), ("update", "orders"), ("commitTransaction", "")]
