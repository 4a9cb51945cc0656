"""The analytics service's pure rules: audit entries, order facts, promotions, recommendations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from analytics_service.domain import (
    allocate,
    audit_entry,
    fold_order,
    loyalty_grant,
    promotion_code,
    rate,
    recommend,
    spreadsheet_safe,
    winback_grant,
)

from contracts import Actor, Envelope, Event
from contracts.gateway import AccessDenied
from contracts.order import OrderCancelled, OrderConfirmed, OrderPlaced
from contracts.payment import PaymentFailed
from contracts.testing import sample
from contracts.types import PricedLine
from contracts.user import UserRegistered

pytestmark = pytest.mark.unit

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


def at(event: Event, minutes: int = 0, actor: Actor | None = None) -> Envelope[Any]:
    envelope = Envelope.wrap(event, correlation_id="o1", actor=actor or Actor())
    return envelope.model_copy(update={"occurred_at": NOW + timedelta(minutes=minutes)})


def test_audit_entry_who_what_where_and_outcome() -> None:
    who = Actor(user_id="u1", role="Customer", ip="1.2.3.4", device="ff", region="eu")
    denied = audit_entry(at(AccessDenied(method="GET", path="/api/v1/users"), actor=who))
    assert denied["outcome"] == "denied"
    assert (denied["entity_type"], denied["entity_id"]) == ("endpoint", "GET /api/v1/users")
    assert denied["actor"] == {
        "user_id": "u1",
        "role": "Customer",
        "ip": "1.2.3.4",
        "device": "ff",
        "region": "eu",
    }
    failed = audit_entry(at(sample(PaymentFailed, order_id="o1")))
    assert (failed["outcome"], failed["entity_type"], failed["entity_id"]) == (
        "failed",
        "order",
        "o1",
    )
    # Sign-up has no token yet: the new user is the actor.
    signup = audit_entry(at(sample(UserRegistered, user_id="u9", role="Customer")))
    assert signup["actor"]["user_id"] == "u9" and signup["action"] == "UserRegistered"


def _placed() -> OrderPlaced:
    items = (PricedLine(product_id="p1", quantity=2, price_cents=300),)
    return sample(OrderPlaced, order_id="o1", user_id="u1", items=items, total_cents=600)


def _confirmed() -> OrderConfirmed:
    items = (PricedLine(product_id="p1", quantity=1, price_cents=300),)
    return sample(
        OrderConfirmed,
        order_id="o1",
        user_id="u1",
        items=items,
        total_cents=300,
        partial_fulfillment=True,
    )


def test_order_fact_folds_in_any_order_and_terminal_status_sticks() -> None:
    events = [
        at(_placed(), 0),
        at(sample(PaymentFailed, order_id="o1", user_id="u1"), 1),
        at(_confirmed(), 2),
        at(sample(OrderCancelled, order_id="o1", user_id="u1"), 3),  # too late: stays confirmed
    ]
    forward: dict[str, Any] | None = None
    for envelope in events:
        forward = fold_order(forward, envelope)
    backward: dict[str, Any] | None = None
    for envelope in reversed(events[:3]):
        backward = fold_order(backward, envelope)
    for fact in (forward, backward):
        assert fact is not None
        assert fact["status"] == "CONFIRMED"
        assert fact["revenue_cents"] == 300 and fact["total_cents"] == 300
        assert fact["payment_failed"] and fact["partial"]
        assert fact["placed_at"] == NOW and fact["day"] == "2026-03-01"
        assert fact["items"] == [
            {"product_id": "p1", "quantity": 1, "price_cents": 300, "revenue_cents": 300}
        ]


def test_loyalty_grant_on_the_third_confirmed_order_once() -> None:
    assert loyalty_grant("u1", 2, [], NOW) is None
    grant = loyalty_grant("u1", 3, [], NOW)
    assert grant is not None and grant.percent_off == 10
    assert grant.expires_at == NOW + timedelta(days=30)
    assert grant.code == promotion_code("u1", "loyal3") != promotion_code("u2", "loyal3")
    assert loyalty_grant("u1", 4, ["loyal3"], NOW) is None


def test_recommend_orders_sources_and_excludes_what_cannot_be_bought() -> None:
    found = recommend(
        bought={"p1": 2, "p2": 1},
        co_purchased={"p3": 1, "p4": 5, "p1": 9},
        same_category=["p2", "p5", "p6"],
        top_sellers=["p1", "p7"],
        catalogue=["p8"],
        buyable={"p1", "p2", "p3", "p5", "p7", "p8"},  # p4, p6: out of stock or deleted
    )
    assert [(r.product_id, r.reason) for r in found] == [
        ("p3", "boughtTogether"),
        ("p2", "sameCategory"),  # bought once: may come back
        ("p5", "sameCategory"),
        ("p7", "topSeller"),
        ("p8", "catalogue"),
    ]


def test_rate() -> None:
    assert rate(1, 3) == 0.3333 and rate(0, 0) == 0.0


def test_winback_once_for_inactive_buyers() -> None:
    month = timedelta(days=30)
    old = NOW - timedelta(days=31)
    grant = winback_grant("u1", old, 1, [], NOW, month)
    assert grant is not None and grant.rule == "winback" and grant.percent_off == 15
    assert winback_grant("u1", NOW - timedelta(days=3), 1, [], NOW, month) is None
    assert winback_grant("u1", old, 0, [], NOW, month) is None  # never bought
    assert winback_grant("u1", old, 1, ["winback"], NOW, month) is None


def test_confirmed_lines_share_what_was_charged() -> None:
    """A 10 % code: each line's revenue is its share of the discounted total, summing to it."""
    items = (
        PricedLine(product_id="a", quantity=1, price_cents=999),
        PricedLine(product_id="b", quantity=2, price_cents=333),
        PricedLine(product_id="c", quantity=1, price_cents=1),
    )
    subtotal = 999 + 2 * 333 + 1
    total = subtotal * 90 // 100
    fact = fold_order(
        None,
        Envelope.wrap(
            OrderConfirmed(
                order_id="o1", user_id="u1", items=items, total_cents=total, payment_method_id="pm"
            ),
            correlation_id="o1",
        ),
    )
    shares = {i["product_id"]: i["revenue_cents"] for i in fact["items"]}
    assert sum(shares.values()) == total == fact["revenue_cents"]
    assert shares["a"] in (899, 900) and shares["b"] in (599, 600) and shares["c"] in (0, 1)
    # Without a discount each line is its list value.
    plain = allocate([{"quantity": 2, "price_cents": 250}, {"quantity": 1, "price_cents": 5}], 505)
    assert [i["revenue_cents"] for i in plain] == [500, 5]
    assert allocate([{"quantity": 1, "price_cents": 0}], 0) == [
        {"quantity": 1, "price_cents": 0, "revenue_cents": 0}
    ]


def test_spreadsheet_safe_quotes_only_formula_starts() -> None:
    for cell in ("=1+1", "+1", "-1", "@A1", "\t=1", "\r=1"):
        assert spreadsheet_safe(cell) == f"'{cell}"
    for cell in ("p1", "2026-01-02", "", "a=b", "'quoted"):
        assert spreadsheet_safe(cell) == cell
