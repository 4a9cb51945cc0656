"""After CONFIRMED: the order's view of its shipment, and its returns (api.md "Fulfilment and
returns"): refund maths, quantity bounds, the window, the returns' state machine and deadlines."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from order_service.domain import (
    IdempotencyKeyReused,
    InvalidQuantity,
    InvalidState,
    NotAllowed,
    NotDelivered,
    Order,
    Policy,
    ProductFacts,
    Promotion,
    ReturnInvalidState,
    ReturnNotFound,
    ReturnQuantityExceeded,
    ReturnWindowClosed,
    UnknownProduct,
    refund_for,
)
from order_service.domain.inputs import Cause

from contracts.envelope import Actor
from contracts.types import Address, Line, MissingLine

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
POLICY = Policy(
    return_window=timedelta(days=30),
    return_receive_window=timedelta(days=30),
    refund_window=timedelta(seconds=900),
)
CATALOGUE = {
    "book": ProductFacts("book", "Book", 1_999),
    "pen": ProductFacts("pen", "Pen", 250),
}
CUSTOMER = Actor(user_id="u1", role="Customer")
OTHER = Actor(user_id="u2", role="Customer")
MANAGER = Actor(user_id="m1", role="Manager")
ADMIN = Actor(user_id="a1", role="Admin")
ADDRESS = Address(address_id="a1", line1="1 rue", city="Paris", zip="75001", country="FR")
DELIVERED_AT = T0 + timedelta(days=2)


def at(days: float = 0, actor: Actor | None = None, **extra: Any) -> Cause:
    return Cause(at=T0 + timedelta(days=days), actor=actor or Actor(), **extra)


def ev(event_type: str, service: str, days: float = 0.1) -> Cause:
    return at(days, event_id=f"e-{event_type}-{days}", event_type=event_type, service=service)


def confirmed(
    items: list[tuple[str, int]] | None = None,
    *,
    promotion: Promotion | None = None,
    held: list[tuple[str, int]] | None = None,
) -> Order:
    """A CONFIRMED order of u1 (by default 2 books and 4 pens); `held` makes it partial."""
    items = items or [("book", 2), ("pen", 4)]
    order = Order.place(
        order_id="o1",
        user_id="u1",
        items=items,
        catalogue=CATALOGUE,
        address_id="a1",
        payment_method_id="pm1",
        cause=at(0, CUSTOMER),
        promotion=promotion,
        partial_preference="accept",
        address=ADDRESS,
    )
    expires = T0 + timedelta(minutes=15)
    if held is None:
        reserved = [Line(product_id=p, quantity=q) for p, q in items]
        order.stock_reserved(reserved, expires, ev("StockReserved", "inventory", 0.01), POLICY)
    else:
        asked = dict(items)
        order.stock_partially_reserved(
            [Line(product_id=p, quantity=q) for p, q in held if q],
            [
                MissingLine(product_id=p, requested=asked[p], available=q)
                for p, q in held
                if q < asked[p]
            ],
            expires,
            ev("StockPartiallyReserved", "inventory", 0.01),
            POLICY,
        )
    order.payment_authorized("pay1", 1, ev("PaymentAuthorized", "payment", 0.02), POLICY)
    order.stock_committed(ev("StockCommitted", "inventory", 0.03))
    assert order.status == "CONFIRMED"
    return order


def delivered(order: Order | None = None) -> Order:
    order = order or confirmed()
    order.shipment_created("s1", ev("ShipmentCreated", "shipping", 0.5))
    order.shipment_dispatched(
        "s1", "sandbox", "TRK1", T0 + timedelta(days=1), ev("ShipmentDispatched", "shipping", 1)
    )
    order.shipment_delivered("s1", DELIVERED_AT, ev("ShipmentDelivered", "shipping", 2))
    order.pull_events()
    return order


def types(order: Order) -> list[str]:
    return [raised.event.TYPE for raised in order.pull_events()]


def request(order: Order, *items: tuple[str, int], days: float = 3, key: str | None = None) -> str:
    ret = order.request_return(
        f"r{len(order.returns) + 1}",
        list(items),
        "does not fit",
        at(days, CUSTOMER),
        POLICY,
        key=key,
    )
    return ret.return_id


def received(order: Order, *items: tuple[str, int]) -> str:
    return_id = request(order, *items)
    order.approve_return(return_id, "m1", "ok", at(4, MANAGER), POLICY)
    order.receive_return(return_id, "a1", at(5, ADMIN), POLICY)
    order.pull_events()
    return return_id


# --- refund maths -----------------------------------------------------------------------------


def test_without_a_promotion_a_return_refunds_its_lines_prices() -> None:
    assert refund_for(1_999, subtotal_cents=4_998, total_cents=4_998, claimed_cents=0,
                      completes=False) == 1_999  # fmt: skip


def test_a_promotion_is_shared_in_proportion_and_rounded_down() -> None:
    # Two books at 19.99 with 10 % off: subtotal 39.98, discount 3.99 (rounded down), 35.99.
    assert refund_for(1_999, subtotal_cents=3_998, total_cents=3_599, claimed_cents=0,
                      completes=False) == 1_799  # 1799.5 rounded down  # fmt: skip
    # The return of the last unit refunds what is left: the two refunds are the whole total.
    assert refund_for(1_999, subtotal_cents=3_998, total_cents=3_599, claimed_cents=1_799,
                      completes=True) == 1_800  # fmt: skip


def test_a_refund_never_exceeds_what_is_left_of_the_total() -> None:
    assert refund_for(1_000, subtotal_cents=2_000, total_cents=2_000, claimed_cents=1_500,
                      completes=False) == 500  # fmt: skip
    assert refund_for(1_000, subtotal_cents=2_000, total_cents=2_000, claimed_cents=2_000,
                      completes=True) == 0  # fmt: skip
    assert refund_for(1_000, subtotal_cents=0, total_cents=0, claimed_cents=0,
                      completes=False) == 0  # fmt: skip


def test_a_return_on_a_promoted_order_refunds_the_discounted_price() -> None:
    promo = Promotion("SAVE10", "u1", 10, T0 + timedelta(days=1))
    order = delivered(confirmed([("book", 2)], promotion=promo))
    assert (order.subtotal_cents, order.discount_cents, order.total_cents) == (3_998, 399, 3_599)
    first = request(order, ("book", 1))
    assert order.find_return(first).refund_cents == 1_799
    second = request(order, ("book", 1))
    assert order.find_return(second).refund_cents == 1_800
    assert sum(r.refund_cents for r in order.returns) == order.total_cents


@pytest.mark.parametrize("seed", range(20))
def test_refunds_of_an_order_never_exceed_its_total(seed: int) -> None:
    rng = random.Random(seed)
    percent = rng.choice([0, 5, 10, 15, 33])
    items = [("book", rng.randint(1, 5)), ("pen", rng.randint(1, 7))]
    promo = Promotion("P", "u1", percent, T0 + timedelta(days=1)) if percent else None
    order = delivered(confirmed(items, promotion=promo))
    while True:
        left = order.delivered()
        for ret in order.returns:
            if ret.status != "REJECTED":
                for line in ret.items:
                    left[line.product_id] -= line.quantity
        open_lines = [(p, rng.randint(1, q)) for p, q in left.items() if q > 0]
        if not open_lines:
            break
        return_id = request(order, *rng.sample(open_lines, rng.randint(1, len(open_lines))))
        if rng.random() < 0.3:
            order.reject_return(return_id, "m1", "no", at(4, MANAGER))
        claimed = sum(r.refund_cents for r in order.returns if r.status != "REJECTED")
        assert claimed <= order.total_cents
    # Everything went back in the end: exactly what was captured is refunded, not a cent more.
    claimed = sum(r.refund_cents for r in order.returns if r.status != "REJECTED")
    assert claimed == order.total_cents


# --- OrderConfirmed ---------------------------------------------------------------------------


def test_order_confirmed_carries_the_address_and_the_fulfilled_quantities() -> None:
    order = confirmed([("book", 2), ("pen", 4)], held=[("book", 2), ("pen", 1)])
    confirmation = order.pull_events()[-1].event
    data = confirmation.model_dump()
    assert confirmation.TYPE == "OrderConfirmed"
    assert data["address"]["city"] == "Paris" and data["address"]["address_id"] == "a1"
    assert [(line["product_id"], line["quantity"]) for line in data["items"]] == [
        ("book", 2),
        ("pen", 1),
    ]
    assert data["total_cents"] == 2 * 1_999 + 250


# --- fulfilment -------------------------------------------------------------------------------


def test_shipment_steps_fill_the_fulfilment_and_the_status_stays_confirmed() -> None:
    order = confirmed()
    order.pull_events()
    assert order.shipment_created("s1", ev("ShipmentCreated", "shipping", 0.5))
    assert order.fulfilment is not None and order.fulfilment.status == "PENDING"
    shipped = T0 + timedelta(days=1)
    assert order.shipment_dispatched(
        "s1", "sandbox", "TRK1", shipped, ev("ShipmentDispatched", "shipping", 1)
    )
    assert (order.fulfilment.status, order.fulfilment.tracking_number) == ("SHIPPED", "TRK1")
    assert order.shipment_delivered("s1", DELIVERED_AT, ev("ShipmentDelivered", "shipping", 2))
    assert (order.fulfilment.status, order.fulfilment.delivered_at) == ("DELIVERED", DELIVERED_AT)
    assert order.status == "CONFIRMED" and order.pull_events() == []
    steps = [entry.step for entry in order.timeline[-3:]]
    assert steps == ["shipmentCreated", "shipmentDispatched", "shipmentDelivered"]
    assert order.timeline[-2].detail["trackingNumber"] == "TRK1"


def test_shipment_events_out_of_order_only_move_forward_and_duplicates_change_nothing() -> None:
    order = confirmed()
    assert order.shipment_delivered("s1", DELIVERED_AT, ev("ShipmentDelivered", "shipping", 2))
    assert order.shipment_dispatched(
        "s1", "sandbox", "TRK1", T0 + timedelta(days=1), ev("ShipmentDispatched", "shipping", 3)
    )
    assert order.shipment_created("s1", ev("ShipmentCreated", "shipping", 4))
    assert order.fulfilment is not None
    assert (order.fulfilment.status, order.fulfilment.carrier) == ("DELIVERED", "sandbox")
    before = order.model_dump()
    assert not order.shipment_created("s1", ev("ShipmentCreated", "shipping", 5))
    assert not order.shipment_dispatched(
        "s1", "other", "TRK2", T0, ev("ShipmentDispatched", "shipping", 5)
    )
    assert not order.shipment_delivered("s1", T0, ev("ShipmentDelivered", "shipping", 5))
    # Another shipment than the order's one is not the order's.
    assert not order.shipment_delivered("s2", T0, ev("ShipmentDelivered", "shipping", 5))
    assert order.model_dump() == before


def test_a_shipment_of_an_order_that_is_not_confirmed_is_refused() -> None:
    order = Order.place(
        order_id="o2",
        user_id="u1",
        items=[("book", 1)],
        catalogue=CATALOGUE,
        address_id="a1",
        payment_method_id="pm1",
        cause=at(0, CUSTOMER),
    )
    with pytest.raises(InvalidState):
        order.shipment_created("s1", ev("ShipmentCreated", "shipping"))


# --- asking for a return ----------------------------------------------------------------------


def test_a_return_raises_return_requested_with_its_refund() -> None:
    order = delivered()
    return_id = request(order, ("book", 1), ("pen", 2))
    ret = order.find_return(return_id)
    assert (ret.status, ret.refund_cents, ret.requested_by) == ("REQUESTED", 1_999 + 500, "u1")
    (raised,) = order.pull_events()
    data = raised.event.model_dump()
    assert raised.event.TYPE == "ReturnRequested"
    assert (data["return_id"], data["order_id"], data["refund_cents"]) == (return_id, "o1", 2_499)
    assert [(line["product_id"], line["quantity"]) for line in data["lines"]] == [
        ("book", 1),
        ("pen", 2),
    ]
    assert order.status == "CONFIRMED" and order.deadline is None  # a Manager decides: no wait
    assert order.timeline[-1].event_id == raised.event_id
    assert order.audit_logs[-1].return_id == return_id
    assert order.audit_logs[-1].return_status == "REQUESTED"


def test_a_return_before_delivery_is_refused() -> None:
    order = confirmed()
    with pytest.raises(NotDelivered):
        request(order, ("book", 1))
    order.shipment_dispatched(
        "s1", "sandbox", "TRK1", T0 + timedelta(days=1), ev("ShipmentDispatched", "shipping", 1)
    )
    with pytest.raises(NotDelivered):
        request(order, ("book", 1))
    assert order.returns == []


def test_the_return_window_closes_window_days_after_delivery() -> None:
    order = delivered()
    window = POLICY.return_window.days
    last_moment = (DELIVERED_AT - T0).days + window
    request(order, ("book", 1), days=last_moment)  # the last moment is still inside
    with pytest.raises(ReturnWindowClosed):
        request(order, ("book", 1), days=last_moment + 0.001)


def test_quantities_are_bounded_by_what_was_delivered_less_earlier_returns() -> None:
    order = delivered(confirmed([("book", 2), ("pen", 4)], held=[("book", 2), ("pen", 1)]))
    with pytest.raises(ReturnQuantityExceeded) as exceeded:
        request(order, ("pen", 2))  # one pen was delivered, not four
    assert (exceeded.value.product_id, exceeded.value.returnable) == ("pen", 1)
    first = request(order, ("book", 1), ("book", 1))  # duplicate lines are summed
    with pytest.raises(ReturnQuantityExceeded):
        request(order, ("book", 1))
    # A rejected return gives its units back to the order.
    order.reject_return(first, "m1", "worn", at(4, MANAGER))
    request(order, ("book", 2))
    with pytest.raises(UnknownProduct):
        request(order, ("tv", 1))
    with pytest.raises(InvalidQuantity):
        request(order, ("pen", 0))


def test_only_the_customer_of_the_order_asks_for_a_return() -> None:
    order = delivered()
    for actor in (OTHER, MANAGER, ADMIN):
        with pytest.raises(NotAllowed):
            order.request_return("r9", [("book", 1)], "x", at(3, actor), POLICY)
    assert order.returns == []


def test_a_replayed_idempotency_key_answers_the_same_return() -> None:
    order = delivered()
    first = request(order, ("book", 1), key="k1")
    order.pull_events()
    steps = len(order.timeline)
    assert request(order, ("book", 1), key="k1") == first
    assert len(order.returns) == 1 and order.pull_events() == []
    assert len(order.timeline) == steps
    with pytest.raises(IdempotencyKeyReused):
        request(order, ("book", 2), key="k1")


# --- the returns' state machine ---------------------------------------------------------------


def test_approve_receive_refund_restock() -> None:
    order = delivered()
    return_id = request(order, ("book", 1))
    order.pull_events()
    with pytest.raises(NotAllowed):
        order.approve_return(return_id, "u1", "ok", at(4, CUSTOMER), POLICY)
    ret = order.approve_return(return_id, "m1", "ok", at(4, MANAGER), POLICY)
    assert (ret.status, ret.decided_by, ret.due) == ("APPROVED", "m1", at(34).at)
    assert order.deadline == ret.due
    assert types(order) == ["ReturnApproved"]
    with pytest.raises(ReturnInvalidState) as wrong:
        order.approve_return(return_id, "m1", "again", at(4, MANAGER), POLICY)
    assert (wrong.value.code, wrong.value.current_status) == ("INVALID_STATE", "APPROVED")
    with pytest.raises(NotAllowed):
        order.receive_return(return_id, "m1", at(5, MANAGER), POLICY)
    ret = order.receive_return(return_id, "a1", at(5, ADMIN), POLICY)
    assert ret.status == "RECEIVED" and order.deadline == at(5).at + POLICY.refund_window
    (received_event,) = order.pull_events()
    data = received_event.event.model_dump()
    assert (data["refund_cents"], data["payment_id"]) == (1_999, "pay1")
    assert [(line["product_id"], line["quantity"]) for line in data["lines"]] == [("book", 1)]

    assert order.return_refunded(return_id, 1_999, "pay1", ev("PaymentRefunded", "payment", 5.1))
    assert (ret.status, ret.refunded_cents, order.refunded_cents) == ("REFUNDED", 1_999, 1_999)
    assert order.deadline is None
    assert order.stock_returned(return_id, ev("StockReturned", "inventory", 5.2))
    assert ret.restocked_at == at(5.2).at
    before = order.model_dump()
    # Duplicates (other envelopes) and late answers change nothing.
    assert not order.return_refunded(return_id, 1_999, "pay1", ev("PaymentRefunded", "p", 6))
    assert not order.return_refund_failed(return_id, "declined", ev("PaymentRefundFailed", "p", 6))
    assert not order.stock_returned(return_id, ev("StockReturned", "inventory", 6))
    assert order.model_dump() == before and order.pull_events() == []
    steps = [entry.step for entry in order.timeline[-5:]]
    assert steps == [
        "returnRequested",
        "returnApproved",
        "returnReceived",
        "returnRefunded",
        "stockReturned",
    ]
    assert order.timeline[-2].service == "payment"


def test_reject_refunds_nothing_and_is_final() -> None:
    order = delivered()
    return_id = request(order, ("book", 1))
    order.pull_events()
    with pytest.raises(NotAllowed):
        order.reject_return(return_id, "u1", "no", at(4, CUSTOMER))
    ret = order.reject_return(return_id, "m1", "worn", at(4, MANAGER))
    assert (ret.status, ret.rejection_reason) == ("REJECTED", "worn")
    (rejected,) = order.pull_events()
    assert rejected.event.model_dump()["decided_by"] == "m1"
    for step in (
        lambda: order.approve_return(return_id, "m1", "x", at(5, MANAGER), POLICY),
        lambda: order.reject_return(return_id, "m1", "x", at(5, MANAGER)),
        lambda: order.receive_return(return_id, "a1", at(5, ADMIN), POLICY),
    ):
        with pytest.raises(ReturnInvalidState):
            step()
    assert order.refunded_cents == 0


def test_an_unknown_return_is_not_found_and_an_unknown_answer_is_ignored() -> None:
    order = delivered()
    with pytest.raises(ReturnNotFound):
        order.approve_return("nope", "m1", "x", at(4, MANAGER), POLICY)
    assert not order.return_refunded("nope", 1, "pay1", ev("PaymentRefunded", "payment"))
    assert not order.stock_returned("nope", ev("StockReturned", "inventory"))


def test_an_answer_that_could_not_have_come_yet_raises() -> None:
    order = delivered()
    return_id = request(order, ("book", 1))
    with pytest.raises(ReturnInvalidState):
        order.return_refunded(return_id, 1_999, "pay1", ev("PaymentRefunded", "payment", 4))
    with pytest.raises(ReturnInvalidState):
        order.stock_returned(return_id, ev("StockReturned", "inventory", 4))


def test_a_refund_failure_waits_for_a_person_and_a_late_refund_still_counts() -> None:
    order = delivered()
    return_id = received(order, ("pen", 4))
    assert order.return_refund_failed(return_id, "declined", ev("PaymentRefundFailed", "p", 5.1))
    ret = order.find_return(return_id)
    assert (ret.status, ret.failure_reason, ret.due, order.deadline) == (
        "REFUND_FAILED",
        "declined",
        None,
        None,
    )
    assert order.return_refunded(return_id, 1_000, "pay1", ev("PaymentRefunded", "payment", 6))
    assert (ret.status, order.refunded_cents) == ("REFUNDED", 1_000)


# --- deadlines --------------------------------------------------------------------------------


def test_an_approved_return_never_received_is_rejected_not_received() -> None:
    order = delivered()
    return_id = request(order, ("book", 1))
    order.approve_return(return_id, "m1", "ok", at(4, MANAGER), POLICY)
    order.pull_events()
    assert not order.deadline_passed("returns", at(33.9))
    assert order.deadline_passed("returns", at(34))
    ret = order.find_return(return_id)
    assert (ret.status, ret.rejection_reason, order.deadline) == ("REJECTED", "NOT_RECEIVED", None)
    (rejected,) = order.pull_events()
    assert rejected.event.model_dump()["decided_by"] == "system"
    assert order.audit_logs[-1].role == "system"
    assert not order.deadline_passed("returns", at(100))
    assert order.status == "CONFIRMED"


def test_a_refund_never_answered_fails_refund_timeout_and_a_late_refund_wins() -> None:
    order = delivered()
    return_id = received(order, ("book", 1))
    due = at(5).at + POLICY.refund_window
    assert order.deadline == due
    assert order.deadline_passed("returns", Cause(at=due))
    ret = order.find_return(return_id)
    assert (ret.status, ret.failure_reason) == ("REFUND_FAILED", "REFUND_TIMEOUT")
    assert order.pull_events() == []  # payment's events say what happened to the money
    # The provider's own reason replaces the timeout; the money moving makes it REFUNDED.
    assert order.return_refund_failed(return_id, "declined", ev("PaymentRefundFailed", "p", 6))
    assert ret.failure_reason == "declined"
    assert order.return_refunded(return_id, 1_999, "pay1", ev("PaymentRefunded", "payment", 7))
    assert (ret.status, ret.failure_reason, order.refunded_cents) == ("REFUNDED", None, 1_999)


def test_the_orders_deadline_is_its_earliest_returns() -> None:
    order = delivered()
    first = request(order, ("book", 1))
    second = request(order, ("pen", 1))
    order.approve_return(first, "m1", "ok", at(4, MANAGER), POLICY)
    order.approve_return(second, "m1", "ok", at(6, MANAGER), POLICY)
    assert order.deadline == at(34).at
    order.receive_return(first, "a1", at(7, ADMIN), POLICY)
    assert order.deadline == at(7).at + POLICY.refund_window
    order.return_refunded(first, 1_999, "pay1", ev("PaymentRefunded", "payment", 7.001))
    assert order.deadline == at(36).at
    assert order.deadline_passed("returns", at(36))
    assert order.deadline is None


def test_an_order_with_returns_round_trips_through_its_document() -> None:
    order = delivered()
    received(order, ("book", 1))
    assert Order.model_validate(order.model_dump()).model_dump() == order.model_dump()


def test_a_return_with_nothing_to_refund_is_refunded_on_receipt() -> None:
    free = Promotion("FREE", "u1", 100, T0 + timedelta(days=1))
    order = delivered(confirmed([("pen", 1)], promotion=free))
    assert order.total_cents == 0
    return_id = received(order, ("pen", 1))
    ret = order.find_return(return_id)
    assert (ret.status, ret.refund_cents, ret.due, order.deadline) == ("REFUNDED", 0, None, None)
    # Payment's answer to the receipt, whatever it is, changes nothing.
    assert not order.return_refunded(return_id, 0, "pay1", ev("PaymentRefunded", "payment", 6))
    assert not order.return_refund_failed(return_id, "zero", ev("PaymentRefundFailed", "p", 6))
