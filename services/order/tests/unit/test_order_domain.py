"""The order aggregate: each saga branch, illegal steps, money, deadlines, a random walk."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from order_service.domain import (
    STATUSES,
    TERMINAL,
    Cause,
    EmptyOrder,
    InvalidPromoCode,
    InvalidQuantity,
    InvalidState,
    MixedCurrency,
    NotAllowed,
    Order,
    Policy,
    ProductFacts,
    Promotion,
    RetryLimitReached,
    Status,
    UnknownProduct,
)

from contracts.envelope import Actor
from contracts.types import Line, MissingLine

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
POLICY = Policy(
    approval_threshold_cents=50_000,
    decision_window=timedelta(minutes=10),
    approval_window=timedelta(hours=1),
    payment_window=timedelta(minutes=15),
)
CATALOGUE = {
    "book": ProductFacts("book", "Book", 1_999),
    "pen": ProductFacts("pen", "Pen", 250),
    "tv": ProductFacts("tv", "TV", 60_000),
    "gone": ProductFacts("gone", "Gone", 100, deleted=True),
    "eur": ProductFacts("eur", "Euro thing", 100, currency="EUR"),
}
CUSTOMER = Actor(user_id="u1", role="Customer", ip="10.0.0.1", device="firefox", region="eu")
MANAGER = Actor(user_id="m1", role="Manager")
ADMIN = Actor(user_id="a1", role="Admin")


def at(minutes: float = 0, actor: Actor | None = None, **extra: Any) -> Cause:
    return Cause(at=T0 + timedelta(minutes=minutes), actor=actor or Actor(), **extra)


def ev(event_type: str, service: str, minutes: float = 1) -> Cause:
    return at(minutes, event_id=f"e-{event_type}", event_type=event_type, service=service)


def new_order(
    items: list[tuple[str, int]] | None = None,
    *,
    preference: Any = "ask",
    promotion: Promotion | None = None,
) -> Order:
    order = Order.place(
        order_id="o1",
        user_id="u1",
        items=items or [("book", 2), ("pen", 4)],
        catalogue=CATALOGUE,
        address_id="addr1",
        payment_method_id="pm1",
        cause=at(0, CUSTOMER, event_id="req-1"),
        promotion=promotion,
        partial_preference=preference,
    )
    return order


def types(order: Order) -> list[str]:
    return [raised.event.TYPE for raised in order.pull_events()]


def lines(*pairs: tuple[str, int]) -> list[Line]:
    return [Line(product_id=p, quantity=q) for p, q in pairs]


def reserved(order: Order) -> Order:
    order.stock_reserved(
        lines(*[(i.product_id, i.quantity) for i in order.items]),
        T0 + timedelta(minutes=15),
        ev("StockReserved", "inventory"),
        POLICY,
    )
    return order


def awaiting_payment() -> Order:
    order = reserved(new_order())
    order.pull_events()
    return order


def payment_failed() -> Order:
    order = awaiting_payment()
    order.payment_failed("declined", 1, ev("PaymentFailed", "payment", 2), POLICY)
    return order


def paid() -> Order:
    order = awaiting_payment()
    order.payment_authorized("pay1", 1, ev("PaymentAuthorized", "payment", 2), POLICY)
    order.pull_events()
    return order


def partial(preference: Any = "ask") -> Order:
    order = new_order(preference=preference)
    order.pull_events()
    order.stock_partially_reserved(
        lines(("book", 2), ("pen", 1)),
        [MissingLine(product_id="pen", requested=4, available=1)],
        T0 + timedelta(minutes=15),
        ev("StockPartiallyReserved", "inventory"),
        POLICY,
    )
    return order


def awaiting_approval() -> Order:
    order = reserved(new_order([("tv", 1)]))
    order.pull_events()
    return order


# --- placing ----------------------------------------------------------------------------------


def test_place_prices_from_the_catalogue_and_raises_order_placed() -> None:
    order = new_order()
    assert order.status == "PENDING"
    assert [(i.product_id, i.price_cents) for i in order.items] == [("book", 1999), ("pen", 250)]
    assert order.total_cents == 2 * 1999 + 4 * 250
    (raised,) = order.pull_events()
    assert raised.event.TYPE == "OrderPlaced"
    assert raised.event.model_dump()["total_cents"] == 4998
    assert order.timeline[-1].event_id == raised.event_id
    assert order.audit_logs[0].user_id == "u1" and order.audit_logs[0].ip == "10.0.0.1"
    assert order.audit_logs[0].to_status == "PENDING"


def test_duplicate_lines_are_summed() -> None:
    order = new_order([("pen", 3), ("pen", 2)])
    assert [(i.product_id, i.quantity) for i in order.items] == [("pen", 5)]


@pytest.mark.parametrize(
    ("items", "error"),
    [
        ([], EmptyOrder),
        ([("nope", 1)], UnknownProduct),
        ([("gone", 1)], UnknownProduct),
        ([("pen", 0)], InvalidQuantity),
        ([("pen", 101)], InvalidQuantity),
        ([("pen", 60), ("pen", 60)], InvalidQuantity),
        ([("pen", 1), ("eur", 1)], MixedCurrency),
    ],
)
def test_place_refuses_bad_lines(items: list[tuple[str, int]], error: type[Exception]) -> None:
    with pytest.raises(error):
        new_order(items) if items else Order.place(
            order_id="o1",
            user_id="u1",
            items=[],
            catalogue=CATALOGUE,
            address_id="a",
            payment_method_id="pm",
            cause=at(),
        )


def test_quantity_bounds_are_inclusive() -> None:
    assert new_order([("pen", 1)]).total_cents == 250
    assert new_order([("pen", 100)]).total_cents == 25_000


def test_promo_percent_is_applied_rounding_the_discount_down() -> None:
    promo = Promotion("SAVE15", "u1", 15, T0 + timedelta(days=1))
    order = new_order([("book", 1)], promotion=promo)
    # 1999 × 15 % = 299.85 → discount 299, total 1700
    assert (order.subtotal_cents, order.discount_cents, order.total_cents) == (1999, 299, 1700)
    assert types(order) == ["OrderPlaced", "PromotionRedeemed"]


@pytest.mark.parametrize(
    "promo",
    [
        Promotion("X", "someone-else", 10, T0 + timedelta(days=1)),
        Promotion("X", "u1", 10, T0),
        Promotion("X", "u1", 10, T0 + timedelta(days=1), redeemed=True),
    ],
)
def test_promo_of_another_user_expired_or_redeemed_is_refused(promo: Promotion) -> None:
    with pytest.raises(InvalidPromoCode):
        new_order(promotion=promo)


# --- the branches of the saga diagram ---------------------------------------------------------


def test_all_reserved_below_threshold_requests_payment() -> None:
    order = reserved(new_order())
    assert order.status == "AWAITING_PAYMENT"
    raised = order.pull_events()
    assert [r.event.TYPE for r in raised] == ["OrderPlaced", "PaymentRequested"]
    request = raised[1].event.model_dump()
    assert request["attempt"] == 1 and request["review_passed"] is False
    assert request["amount_cents"] == 4998 and request["payment_method_id"] == "pm1"
    assert [i.fulfilled_quantity for i in order.items] == [2, 4]
    assert order.payment_due == T0 + timedelta(minutes=1 + 15)
    assert order.deadline == order.payment_due


def test_all_reserved_at_the_threshold_waits_for_approval() -> None:
    order = reserved(new_order([("tv", 1)]))
    assert order.status == "AWAITING_APPROVAL"
    assert types(order) == ["OrderPlaced", "OrderApprovalRequired"]
    assert order.approval_reason == "highValue" and not order.fraud_flag
    assert order.approval_due == T0 + timedelta(minutes=61)


def test_partial_with_ask_waits_for_the_customer() -> None:
    order = partial("ask")
    assert order.status == "AWAITING_CUSTOMER_DECISION"
    assert order.decision_due == T0 + timedelta(minutes=11)
    assert [i.fulfilled_quantity for i in order.items] == [2, 1]
    assert order.total_cents == 4998  # unchanged until accepted
    assert types(order) == []


def test_partial_with_accept_goes_on_with_the_reserved_lines() -> None:
    order = partial("accept")
    assert order.status == "AWAITING_PAYMENT"
    assert order.total_cents == 2 * 1999 + 250
    assert order.partial_fulfillment
    (request,) = order.pull_events()
    assert request.event.model_dump()["amount_cents"] == 4248


def test_partial_with_cancel_cancels() -> None:
    order = partial("cancel")
    assert order.status == "CANCELLED" and order.cancel_reason == "CUSTOMER"
    assert types(order) == ["OrderCancelled"]


def test_decision_accept_recomputes_and_requests_payment() -> None:
    order = partial("ask")
    order.decide(True, at(3, CUSTOMER), POLICY)
    assert order.status == "AWAITING_PAYMENT" and order.total_cents == 4248
    assert order.decision_due is None
    assert types(order) == ["PaymentRequested"]


def test_decision_decline_cancels() -> None:
    order = partial("ask")
    order.decide(False, at(3, CUSTOMER), POLICY)
    assert order.status == "CANCELLED" and order.cancel_reason == "CUSTOMER"
    assert types(order) == ["OrderCancelled"]


def test_accepted_partial_above_threshold_still_needs_approval() -> None:
    order = new_order([("tv", 2)], preference="accept")
    order.pull_events()
    order.stock_partially_reserved(
        lines(("tv", 1)),
        [MissingLine(product_id="tv", requested=2, available=1)],
        T0,
        ev("StockPartiallyReserved", "inventory"),
        POLICY,
    )
    assert order.status == "AWAITING_APPROVAL" and order.total_cents == 60_000


def test_unavailable_rejects_out_of_stock_with_alternatives() -> None:
    order = new_order()
    order.pull_events()
    order.stock_unavailable(["alt1", "alt2"], ev("StockUnavailable", "inventory"))
    assert order.status == "REJECTED" and order.rejection_reason == "OUT_OF_STOCK"
    assert order.alternatives == ["alt1", "alt2"]
    (rejected,) = order.pull_events()
    assert rejected.event.model_dump()["alternatives"] == ("alt1", "alt2")


def test_fraud_review_waits_for_approval_with_the_fraud_flag() -> None:
    order = awaiting_payment()
    assert order.approval_needed("fraud", ev("PaymentReviewRequired", "payment", 2), POLICY)
    assert order.status == "AWAITING_APPROVAL" and order.fraud_flag
    assert types(order) == ["OrderApprovalRequired"]


def test_approval_for_the_value_requests_payment_without_passing_the_fraud_review() -> None:
    order = awaiting_approval()
    order.approve("m1", "known customer", at(5, MANAGER), POLICY)
    assert order.status == "AWAITING_PAYMENT" and order.review_passed
    raised = order.pull_events()
    assert [r.event.TYPE for r in raised] == ["OrderApproved", "PaymentRequested"]
    # A Manager looked at the order's value, not at the card: the fraud rules still score it.
    assert raised[1].event.model_dump()["review_passed"] is False
    assert order.audit_logs[-1].user_id == "m1" and order.audit_logs[-1].role == "Manager"


def test_order_approved_for_its_value_goes_back_to_review_when_the_card_is_flagged() -> None:
    order = awaiting_approval()
    order.approve("m1", "ok", at(5, MANAGER), POLICY)
    order.pull_events()
    assert order.approval_needed("fraud", ev("PaymentReviewRequired", "payment", 6), POLICY)
    assert order.status == "AWAITING_APPROVAL"
    assert (order.approval_reason, order.fraud_flag) == ("fraud", True)
    assert types(order) == ["OrderApprovalRequired"]


def flagged_then_cleared() -> Order:
    order = awaiting_payment()
    order.approval_needed("fraud", ev("PaymentReviewRequired", "payment", 2), POLICY)
    order.approve("m1", "called the customer", at(5, MANAGER), POLICY)
    return order


def test_fraud_approval_clears_exactly_the_reviewed_card_and_amount() -> None:
    order = flagged_then_cleared()
    requested = order.pull_events()[-1].event.model_dump()
    assert (requested["payment_method_id"], requested["review_passed"]) == ("pm1", True)
    assert order.fraud_cleared is not None
    assert (order.fraud_cleared.method_id, order.fraud_cleared.amount_cents) == (
        "pm1",
        order.total_cents,
    )


def test_retry_with_another_card_after_a_fraud_approval_is_reviewed_again() -> None:
    order = flagged_then_cleared()
    order.payment_failed("DECLINED", 1, ev("PaymentFailed", "payment", 6), POLICY)
    order.pull_events()
    order.retry_payment("pm2", at(7, CUSTOMER), POLICY)
    (requested,) = order.pull_events()
    assert requested.event.model_dump()["review_passed"] is False
    assert order.approval_needed("fraud", at(8, event_id="e-flag-pm2"), POLICY)
    assert (order.status, order.approval_reason) == ("AWAITING_APPROVAL", "fraud")
    # The same card again (what the Manager cleared) passes once more.
    order.approve("m1", "ok too", at(9, MANAGER), POLICY)
    assert order.pull_events()[-1].event.model_dump()["review_passed"] is True


def test_payment_retries_are_capped_per_order() -> None:
    order = payment_failed()
    limited = Policy(max_payment_retries=2)
    for n in range(2):
        order.retry_payment(None, at(3 + n, CUSTOMER), limited)
        order.payment_failed("DECLINED", 1, at(3.5 + n, event_id=f"fail-{n}"), limited)
    with pytest.raises(RetryLimitReached) as refused:
        order.retry_payment("pm2", at(6, CUSTOMER), limited)
    assert refused.value.code == "RETRY_LIMIT_REACHED"
    assert order.status == "PAYMENT_FAILED" and order.payment.retries == 2


def test_paid_order_whose_stock_commit_never_comes_is_cancelled_commit_failed() -> None:
    order = paid()  # authorized at minute 2
    assert order.deadline == T0 + timedelta(minutes=2) + POLICY.commit_window
    assert not order.deadline_passed("commit", at(3))
    assert order.status == "PAID"
    assert order.deadline_passed(
        "commit", Cause(at=T0 + timedelta(minutes=2) + POLICY.commit_window)
    )
    assert (order.status, order.cancel_reason) == ("CANCELLED", "COMMIT_FAILED")
    (cancelled,) = order.pull_events()
    assert cancelled.event.model_dump()["reason"] == "COMMIT_FAILED"
    assert order.deadline is None


def test_committed_order_has_no_commit_deadline() -> None:
    order = paid()
    order.stock_committed(ev("StockCommitted", "inventory", 3))
    assert order.status == "CONFIRMED" and order.deadline is None
    assert not order.deadline_passed("commit", at(60 * 24))


@pytest.mark.parametrize(("fraud", "reason"), [(False, "MANAGER_REJECTED"), (True, "FRAUD")])
def test_reject_rejects(fraud: bool, reason: str) -> None:
    order = awaiting_approval()
    order.fraud_flag = fraud
    order.reject("m1", "no", at(5, MANAGER))
    assert order.status == "REJECTED" and order.rejection_reason == reason
    (rejected,) = order.pull_events()
    assert rejected.event.model_dump()["reason"] == reason


def test_customer_may_not_approve_or_reject() -> None:
    order = awaiting_approval()
    with pytest.raises(NotAllowed):
        order.approve("u1", "me", at(5, CUSTOMER), POLICY)
    with pytest.raises(NotAllowed):
        order.reject("u1", "me", at(5, CUSTOMER))
    assert order.status == "AWAITING_APPROVAL"


def test_authorized_payment_pays_with_the_reserved_lines() -> None:
    order = partial("accept")
    order.pull_events()
    order.payment_authorized("pay1", 3, ev("PaymentAuthorized", "payment", 2), POLICY)
    assert order.status == "PAID" and order.payment.attempts == 3
    (paid_event,) = order.pull_events()
    assert paid_event.event.model_dump()["lines"] == (
        {"product_id": "book", "quantity": 2},
        {"product_id": "pen", "quantity": 1},
    )


def test_committed_stock_confirms() -> None:
    order = paid()
    order.stock_committed(ev("StockCommitted", "inventory", 3))
    assert order.status == "CONFIRMED"
    (confirmed,) = order.pull_events()
    data = confirmed.event.model_dump()
    assert data["payment_id"] == "pay1" and data["total_cents"] == 4998
    assert order.deadline is None


def test_commit_failure_cancels() -> None:
    order = paid()
    order.stock_commit_failed("expired", ev("StockCommitFailed", "inventory", 3))
    assert order.status == "CANCELLED" and order.cancel_reason == "COMMIT_FAILED"
    assert types(order) == ["OrderCancelled"]


def test_payment_failure_then_retry_with_another_method() -> None:
    order = payment_failed()
    assert order.status == "PAYMENT_FAILED" and order.payment.last_error == "declined"
    assert order.payment_due == T0 + timedelta(minutes=2 + 15)
    order.retry_payment("pm2", at(5, CUSTOMER), POLICY)
    assert order.status == "AWAITING_PAYMENT"
    (request,) = order.pull_events()
    assert request.event.model_dump()["attempt"] == 2
    assert request.event.model_dump()["payment_method_id"] == "pm2"
    # the retry does not extend the window
    assert order.payment_due == T0 + timedelta(minutes=17)


def test_the_failure_window_opens_at_the_first_failure_even_after_approval() -> None:
    order = awaiting_approval()
    order.approve("m1", "ok", at(50, MANAGER), POLICY)
    order.payment_failed("declined", 1, ev("PaymentFailed", "payment", 55), POLICY)
    assert order.payment_due == T0 + timedelta(minutes=55 + 15)
    order.retry_payment(None, at(60, CUSTOMER), POLICY)
    order.payment_failed("declined", 2, ev("PaymentFailed", "payment", 65), POLICY)
    assert order.payment_due == T0 + timedelta(minutes=70)
    assert order.payment.attempts == 2 and order.payment.requests == 2


def test_retry_after_the_window_closed_is_refused() -> None:
    order = payment_failed()
    with pytest.raises(InvalidState):
        order.retry_payment(None, at(30, CUSTOMER), POLICY)


def test_customer_cancels_before_paid() -> None:
    order = payment_failed()
    order.cancel("u1", "Customer", "changed my mind", at(3, CUSTOMER))
    assert order.status == "CANCELLED" and order.cancel_reason == "CUSTOMER"
    (cancelled,) = order.pull_events()
    assert cancelled.event.model_dump()["cancelled_by"] == "u1"


def test_customer_cannot_cancel_a_paid_order_but_admin_can() -> None:
    order = paid()
    with pytest.raises(InvalidState) as refused:
        order.cancel("u1", "Customer", None, at(3, CUSTOMER))
    assert refused.value.current_status == "PAID"
    order.cancel("a1", "Admin", "fraud", at(3, ADMIN))
    assert order.status == "CANCELLED" and order.cancel_reason == "ADMIN"


@pytest.mark.parametrize(
    ("make", "kind", "reason"),
    [
        (lambda: partial("ask"), "decision", "DECISION_TIMEOUT"),
        (awaiting_approval, "approval", "APPROVAL_TIMEOUT"),
        (awaiting_payment, "payment", "PAYMENT_TIMEOUT"),
        (payment_failed, "payment", "PAYMENT_FAILED"),
    ],
)
def test_deadlines_cancel_with_their_reason(
    make: Callable[[], Order], kind: Any, reason: str
) -> None:
    order = make()
    order.pull_events()
    assert order.deadline is not None
    assert not order.deadline_passed(kind, at(0.5))  # not yet due
    assert order.deadline_passed(kind, Cause(at=order.deadline))
    assert order.status == "CANCELLED" and order.cancel_reason == reason
    assert types(order) == ["OrderCancelled"]
    assert not order.deadline_passed(kind, at(10_000))


def test_deadline_of_another_wait_changes_nothing() -> None:
    order = awaiting_payment()
    assert not order.deadline_passed("decision", at(10_000))
    assert not order.deadline_passed("approval", at(10_000))
    assert order.status == "AWAITING_PAYMENT"


# --- late and duplicate events ----------------------------------------------------------------


def test_payment_authorized_after_cancel_commits_nothing() -> None:
    order = awaiting_payment()
    order.cancel("u1", "Customer", None, at(2, CUSTOMER))
    order.pull_events()
    before = order.model_dump()
    assert not order.payment_authorized("pay1", 1, ev("PaymentAuthorized", "payment", 3), POLICY)
    assert order.model_dump() == before and order.pull_events() == []


def test_payment_authorized_after_failure_is_ignored() -> None:
    order = payment_failed()
    assert not order.payment_authorized("pay1", 1, ev("PaymentAuthorized", "payment", 3), POLICY)
    assert order.status == "PAYMENT_FAILED"


STEPS: dict[str, Callable[[Order], object]] = {
    "stock_reserved": lambda o: o.stock_reserved(
        lines(("book", 2), ("pen", 4)), T0, ev("StockReserved", "inventory"), POLICY
    ),
    "stock_partially_reserved": lambda o: o.stock_partially_reserved(
        lines(("book", 2)), [], T0, ev("StockPartiallyReserved", "inventory"), POLICY
    ),
    "stock_unavailable": lambda o: o.stock_unavailable([], ev("StockUnavailable", "inventory")),
    "payment_authorized": lambda o: o.payment_authorized(
        "p", 1, ev("PaymentAuthorized", "pay"), POLICY
    ),
    "payment_failed": lambda o: o.payment_failed("x", 1, ev("PaymentFailed", "payment"), POLICY),
    "approval_needed": lambda o: o.approval_needed("fraud", ev("Review", "payment"), POLICY),
    "stock_committed": lambda o: o.stock_committed(ev("StockCommitted", "inventory")),
    "stock_commit_failed": lambda o: o.stock_commit_failed("x", ev("Failed", "inventory")),
}


@pytest.mark.parametrize(
    ("make", "step"),
    [
        (awaiting_payment, "stock_reserved"),
        (awaiting_payment, "stock_partially_reserved"),
        (awaiting_payment, "stock_unavailable"),
        (paid, "payment_authorized"),
        (payment_failed, "payment_failed"),
        (paid, "payment_failed"),
        (awaiting_approval, "approval_needed"),
    ],
)
def test_the_same_event_twice_changes_nothing(make: Callable[[], Order], step: str) -> None:
    order = make()
    order.pull_events()
    before = order.model_dump()
    assert STEPS[step](order) is False
    assert order.model_dump() == before and order.pull_events() == []


def test_committed_twice_confirms_once() -> None:
    order = paid()
    order.stock_committed(ev("StockCommitted", "inventory", 3))
    order.stock_committed(ev("StockCommitted", "inventory", 4))
    assert types(order) == ["OrderConfirmed"]


# --- illegal transitions, per state -----------------------------------------------------------


def in_state(status: Status) -> Order:
    order = new_order()
    order.status = status
    order.pull_events()
    return order


COMMANDS: dict[str, Callable[[Order], object]] = {
    "decide": lambda o: o.decide(True, at(1, CUSTOMER), POLICY),
    "approve": lambda o: o.approve("m1", "ok", at(1, MANAGER), POLICY),
    "reject": lambda o: o.reject("m1", "no", at(1, MANAGER)),
    "retry_payment": lambda o: o.retry_payment(None, at(1, CUSTOMER), POLICY),
    "customer_cancel": lambda o: o.cancel("u1", "Customer", None, at(1, CUSTOMER)),
    "admin_cancel": lambda o: o.cancel("a1", "Admin", None, at(1, ADMIN)),
}
LEGAL: dict[str, set[str]] = {
    "decide": {"AWAITING_CUSTOMER_DECISION"},
    "approve": {"AWAITING_APPROVAL"},
    "reject": {"AWAITING_APPROVAL"},
    "retry_payment": {"PAYMENT_FAILED"},
    "customer_cancel": {
        "PENDING",
        "AWAITING_CUSTOMER_DECISION",
        "AWAITING_APPROVAL",
        "AWAITING_PAYMENT",
        "PAYMENT_FAILED",
    },
    "admin_cancel": set(STATUSES) - TERMINAL,
}


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("command", list(COMMANDS))
def test_commands_in_illegal_states_raise_invalid_state(status: Status, command: str) -> None:
    order = in_state(status)
    if status in LEGAL[command]:
        COMMANDS[command](order)
        assert order.status != status
        return
    before = order.model_dump()
    with pytest.raises(InvalidState) as refused:
        COMMANDS[command](order)
    assert refused.value.current_status == status and refused.value.order_id == "o1"
    assert order.model_dump() == before and order.events == []


# Events that cannot have happened yet in a state raise; those already past are ignored.
EVENT_LEGAL: dict[str, set[str]] = {
    "stock_reserved": {"PENDING"},
    "stock_partially_reserved": {"PENDING"},
    "stock_unavailable": {"PENDING"},
    "payment_authorized": {"AWAITING_PAYMENT"},
    "payment_failed": {"AWAITING_PAYMENT"},
    "approval_needed": {"AWAITING_PAYMENT"},
    "stock_committed": {"PAID"},
    "stock_commit_failed": {"PAID"},
}
EVENT_EARLY: dict[str, set[str]] = {
    "stock_reserved": set(),
    "stock_partially_reserved": set(),
    "stock_unavailable": set(),
    "payment_authorized": {"PENDING", "AWAITING_CUSTOMER_DECISION", "AWAITING_APPROVAL"},
    "payment_failed": {"PENDING", "AWAITING_CUSTOMER_DECISION", "AWAITING_APPROVAL"},
    "approval_needed": {"PENDING", "AWAITING_CUSTOMER_DECISION"},
    "stock_committed": set(STATUSES) - TERMINAL - {"PAID"},
    "stock_commit_failed": set(STATUSES) - TERMINAL - {"PAID"},
}


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("step", list(STEPS))
def test_events_per_state(status: Status, step: str) -> None:
    order = in_state(status)
    before = order.model_dump()
    if status in EVENT_LEGAL[step]:
        assert STEPS[step](order) is True
        assert order.status != status
    elif status in EVENT_EARLY[step]:
        with pytest.raises(InvalidState):
            STEPS[step](order)
        assert order.model_dump() == before
    else:
        assert STEPS[step](order) is False
        assert order.model_dump() == before and order.events == []


# --- timeline and audit -----------------------------------------------------------------------


def test_timeline_names_every_step_with_service_and_event_id() -> None:
    order = paid()
    order.stock_committed(ev("StockCommitted", "inventory", 3))
    steps = [(e.step, e.service, e.event_type) for e in order.timeline]
    assert steps == [
        ("place", "order", "OrderPlaced"),
        ("stockReserved", "inventory", "StockReserved"),
        ("paymentRequested", "order", "PaymentRequested"),
        ("paymentAuthorized", "payment", "PaymentAuthorized"),
        ("paid", "order", "OrderPaid"),
        ("stockCommitted", "inventory", "StockCommitted"),
        ("confirmed", "order", "OrderConfirmed"),
    ]
    assert all(e.event_id for e in order.timeline)
    assert [a.to_status for a in order.audit_logs] == [
        "PENDING",
        "AWAITING_PAYMENT",
        "PAID",
        "CONFIRMED",
    ]


def test_an_order_round_trips_through_its_document() -> None:
    order = paid()
    assert Order.model_validate(order.model_dump()).model_dump() == order.model_dump()


# --- random walk ------------------------------------------------------------------------------


def _walk_step(order: Order, rng: random.Random, minute: float) -> None:
    cause = ev("X", "svc", minute)
    person = at(minute, rng.choice([CUSTOMER, MANAGER, ADMIN]))
    held = lines(*[(i.product_id, i.quantity) for i in order.items])
    choices: list[Callable[[], object]] = [
        lambda: order.stock_reserved(held, T0, cause, POLICY),
        lambda: order.stock_partially_reserved(
            held[:1], [], T0, cause, POLICY, rng.choice(["ask", "accept", "cancel"])
        ),
        lambda: order.stock_unavailable(["alt"], cause),
        lambda: order.payment_authorized("pay", rng.randint(1, 4), cause, POLICY),
        lambda: order.payment_failed("declined", 1, cause, POLICY),
        lambda: order.approval_needed("fraud", cause, POLICY),
        lambda: order.stock_committed(cause),
        lambda: order.stock_commit_failed("gone", cause),
        lambda: order.decide(rng.random() < 0.5, person, POLICY),
        lambda: order.approve("m", "ok", person, POLICY),
        lambda: order.reject("m", "no", person),
        lambda: order.retry_payment("pm9", person, POLICY),
        lambda: order.cancel(person.actor.user_id or "", person.actor.role, None, person),
        lambda: order.deadline_passed(
            rng.choice(["decision", "approval", "payment"]), at(minute + rng.choice([1, 100]))
        ),
    ]
    try:
        rng.choice(choices)()
    except (InvalidState, NotAllowed):
        pass


def _finish(order: Order) -> None:
    """Drive a non-terminal order to the end the way its pending wait would."""
    far = at(100_000)
    if order.status == "PENDING":
        order.stock_unavailable([], far)
    elif order.status == "PAID":
        order.stock_committed(far)
    else:
        for kind in ("decision", "approval", "payment"):
            order.deadline_passed(kind, far)  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", range(40))
def test_random_walks_keep_the_invariants(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(25):
        order = new_order(
            [("book", 1), ("pen", 2)] if rng.random() < 0.7 else [("tv", 1)],
            preference=rng.choice(["ask", "accept", "cancel"]),
        )
        seen: list[str] = [order.status]
        raised: list[str] = []
        for minute in range(rng.randint(1, 20)):
            status = order.status
            _walk_step(order, rng, minute + 1)
            if status in TERMINAL:
                assert order.status == status, "terminal states are final"
            seen.append(order.status)
            raised += [r.event.TYPE for r in order.pull_events()]
        _finish(order)
        raised += [r.event.TYPE for r in order.pull_events()]
        seen.append(order.status)
        assert order.is_terminal, "every path ends in a terminal state"
        if order.status == "CONFIRMED":
            assert "PAID" in seen, "a CONFIRMED order was PAID first"
        if "OrderPaid" in raised:
            assert any(line.fulfilled_quantity for line in order.items)
            assert order.timeline and any(
                e.step in ("stockReserved", "stockPartiallyReserved") for e in order.timeline
            ), "no OrderPaid without a reservation"
        assert raised.count("OrderConfirmed") <= 1
        assert raised.count("OrderPaid") <= 1
        terminal_events = [
            t for t in raised if t in ("OrderConfirmed", "OrderRejected", "OrderCancelled")
        ]
        assert len(terminal_events) == 1, "exactly one terminal event"
        assert [a.to_status for a in order.audit_logs][-1] == order.status


# --- reservation expiry and settlement notes ----------------------------------------------------


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (awaiting_payment, "PAYMENT_TIMEOUT"),
        (payment_failed, "PAYMENT_FAILED"),
        (partial, "DECISION_TIMEOUT"),
        (awaiting_approval, "APPROVAL_TIMEOUT"),
    ],
)
def test_an_expired_reservation_cancels_a_waiting_order(
    make: Callable[[], Order], reason: str
) -> None:
    order = make()
    order.pull_events()
    assert order.stock_released("expired", ev("StockReleased", "inventory", 20))
    assert (order.status, order.cancel_reason) == ("CANCELLED", reason)
    assert types(order) == ["OrderCancelled"]
    assert order.audit_logs[-1].action == "reservationExpired"
    assert order.deadline is None


def test_a_release_after_the_orders_own_cancel_is_only_noted() -> None:
    order = awaiting_payment()
    order.cancel("u1", "Customer", None, at(3, CUSTOMER))
    order.pull_events()
    assert order.stock_released("cancelled", ev("StockReleased", "inventory", 4))
    assert order.status == "CANCELLED" and types(order) == []
    assert order.timeline[-1].step == "stockReleased"
    assert order.timeline[-1].service == "inventory"


def test_a_paid_order_is_not_cancelled_by_an_expiry() -> None:
    order = paid()
    assert order.stock_released("expired", ev("StockReleased", "inventory", 20))
    assert order.status == "PAID"  # the commit re-takes the stock or fails (COMMIT_FAILED)
    assert types(order) == []


def test_settlement_notes_keep_the_status_and_ignore_duplicates() -> None:
    order = paid()
    order.stock_committed(ev("StockCommitted", "inventory", 3))
    order.pull_events()
    captured = ev("PaymentCaptured", "payment", 4)
    assert order.payment_settled("paymentCaptured", {"amountCents": 1}, captured)
    assert not order.payment_settled("paymentCaptured", {"amountCents": 1}, captured)
    assert order.status == "CONFIRMED"
    assert [e.step for e in order.timeline].count("paymentCaptured") == 1
    assert not order.stock_released("expired", captured)  # same event id: a duplicate


def test_approval_required_asks_inventory_to_hold_until_the_approval_deadline() -> None:
    order = new_order([("tv", 1)])
    order.pull_events()
    reserved(order)
    (raised,) = order.pull_events()
    assert raised.event.TYPE == "OrderApprovalRequired"
    assert raised.event.hold_until == order.approval_due  # type: ignore[attr-defined]
    assert order.approval_due == T0 + timedelta(minutes=1) + POLICY.approval_window


def test_an_order_inventory_never_answers_is_cancelled_after_the_stock_window() -> None:
    order = new_order()
    order.pull_events()
    assert order.deadline == order.stock_due == T0 + Policy().stock_window
    assert not order.deadline_passed("stock", at(14))
    assert order.deadline_passed("stock", at(15))
    assert (order.status, order.cancel_reason) == ("CANCELLED", "STOCK_TIMEOUT")
    assert types(order) == ["OrderCancelled"]
    # Inventory's late answer holds nothing for it (it releases on OrderCancelled).
    assert not order.stock_reserved(
        lines(("book", 2)), T0, ev("StockReserved", "inventory"), POLICY
    )


def test_inventory_answering_clears_the_stock_deadline() -> None:
    order = reserved(new_order())
    assert order.stock_due is None
    assert order.deadline == order.payment_due
    assert not order.deadline_passed("stock", at(10_000))
