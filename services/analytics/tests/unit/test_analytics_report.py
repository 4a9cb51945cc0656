"""The sales report's maths after the confirmation: what an order's fact keeps of its shipment,
returns and refunds, and the refunds, net revenue, fulfilment times and return rates of a window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from analytics_service.domain import (
    UNATTRIBUTED,
    DurationStats,
    Window,
    duration_stats,
    fold_order,
    fulfilment_times,
    percentile,
    refund_by_product,
    refunds_in,
    return_rates,
    with_refunds,
)

from contracts import Envelope, Event
from contracts.order import OrderConfirmed, ReturnReceived, ReturnRequested
from contracts.payment import PaymentRefunded
from contracts.shipping import ShipmentDelivered, ShipmentDispatched
from contracts.types import Line, PricedLine

pytestmark = pytest.mark.unit

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
IDS = {"order_id": "o1", "user_id": "u1"}


def at(event: Event, hours: float = 0) -> Envelope[Any]:
    envelope = Envelope.wrap(event, correlation_id="o1")
    return envelope.model_copy(update={"occurred_at": NOW + hours * HOUR})


def fold(*envelopes: Envelope[Any]) -> dict[str, Any]:
    fact: dict[str, Any] | None = None
    for envelope in envelopes:
        fact = fold_order(fact, envelope)
    assert fact is not None
    return fact


def confirmed(total: int = 2 * 1000 + 500) -> Envelope[Any]:
    items = (
        PricedLine(product_id="lamp", quantity=2, price_cents=1000),
        PricedLine(product_id="shade", quantity=1, price_cents=500),
    )
    return at(OrderConfirmed(items=items, total_cents=total, payment_method_id="pm", **IDS))


def journey() -> list[Envelope[Any]]:
    """Confirmed at 0, shipped at 5 h, delivered at 29 h, one lamp returned, refunded at 72 h."""
    one_lamp = (Line(product_id="lamp", quantity=1),)
    return [
        confirmed(),
        at(
            ShipmentDispatched(
                shipment_id="s1",
                carrier="SandboxPost",
                tracking_number="T1",
                shipped_at=NOW + 5 * HOUR,
                **IDS,
            ),
            5,
        ),
        at(ShipmentDelivered(shipment_id="s1", delivered_at=NOW + 29 * HOUR, **IDS), 29),
        at(ReturnRequested(return_id="r1", lines=one_lamp, reason="x", refund_cents=1000, **IDS)),
        at(
            ReturnReceived(
                return_id="r1", lines=one_lamp, refund_cents=1000, payment_id="pay1", **IDS
            ),
            48,
        ),
        at(
            PaymentRefunded(payment_id="pay1", amount_cents=1000, return_id="r1", **IDS),
            72,
        ),
    ]


def test_an_order_fact_keeps_its_shipment_returns_and_refunds_in_any_order() -> None:
    events = journey()
    for fact in (fold(*events), fold(*reversed(events))):
        assert fact["status"] == "CONFIRMED"  # the order stays CONFIRMED after it
        assert fact["shipped_at"] == NOW + 5 * HOUR and fact["delivered_at"] == NOW + 29 * HOUR
        [returned] = fact["returns"]
        assert returned["return_id"] == "r1" and returned["received_at"] == NOW + 48 * HOUR
        assert returned["lines"] == [{"product_id": "lamp", "quantity": 1}]
        assert fact["refunds"] == [
            {
                "key": "r1",
                "return_id": "r1",
                "amount_cents": 1000,
                "currency": "USD",
                "at": NOW + 72 * HOUR,
            }
        ]
        assert fact["revenue_cents"] == 2500


def test_a_returns_refund_counts_once_even_re_emitted_under_a_new_event_id() -> None:
    events = journey()
    refund = events[-1]
    again = Envelope.wrap(refund.data, correlation_id="o1")  # a new id, the same return
    fact = fold(*events, again)
    assert len(fact["refunds"]) == 1
    # Two refunds of no return are two refunds.
    goodwill = PaymentRefunded(payment_id="pay1", amount_cents=100, **IDS)
    fact = fold(*events, at(goodwill, 80), at(goodwill, 81))
    assert sorted(r["amount_cents"] for r in fact["refunds"]) == [100, 100, 1000]


def test_received_lines_win_over_requested_ones() -> None:
    asked = (Line(product_id="lamp", quantity=2),)
    got = (Line(product_id="lamp", quantity=1),)
    requested = at(ReturnRequested(return_id="r1", lines=asked, reason="x", refund_cents=0, **IDS))
    received = at(ReturnReceived(return_id="r1", lines=got, refund_cents=0, payment_id="p", **IDS))
    for fact in (fold(requested, received), fold(received, requested)):
        assert fact["returns"][0]["lines"] == [{"product_id": "lamp", "quantity": 1}]


def _fact(*returns: tuple[str, list[tuple[str, int]]]) -> dict[str, Any]:
    return {
        "items": [
            {"product_id": "lamp", "quantity": 2, "price_cents": 1000},
            {"product_id": "shade", "quantity": 1, "price_cents": 500},
        ],
        "returns": [
            {"return_id": rid, "lines": [{"product_id": p, "quantity": q} for p, q in lines]}
            for rid, lines in returns
        ],
    }


def test_a_refund_is_spread_over_the_returns_lines_by_list_value() -> None:
    fact = _fact(("r1", [("lamp", 1)]), ("r2", [("lamp", 1), ("shade", 1)]))
    # One product returned: the refund is that product's, whatever the promotion took off.
    assert refund_by_product(fact, {"return_id": "r1", "amount_cents": 900}) == {"lamp": 900}
    # A lamp (1000) and a shade (500) with 10 % off: 1350 split 2:1, adding up to it.
    shares = refund_by_product(fact, {"return_id": "r2", "amount_cents": 1349})
    assert shares == {"lamp": 900, "shade": 449} or shares == {"lamp": 899, "shade": 450}
    assert sum(shares.values()) == 1349
    # No known return (its lines not seen yet, or a refund of no return): the order's lines.
    whole = refund_by_product(fact, {"return_id": "r9", "amount_cents": 250})
    assert whole == {"lamp": 200, "shade": 50}
    assert refund_by_product(fact, {"return_id": None, "amount_cents": 250}) == whole
    # Nothing known of the order: the amount still counts, unattributed.
    assert refund_by_product({}, {"return_id": "r1", "amount_cents": 70}) == {UNATTRIBUTED: 70}
    # No prices known: by units.
    free = {"items": [{"product_id": "a", "quantity": 1}, {"product_id": "b", "quantity": 3}]}
    assert refund_by_product(free, {"amount_cents": 400}) == {"a": 100, "b": 300}


def test_refunds_in_a_window_by_their_own_time_and_currency() -> None:
    window = Window(NOW, NOW + 2 * DAY)

    def refund(rid: str, cents: int, when: datetime, currency: str = "USD") -> dict[str, Any]:
        return {"return_id": rid, "amount_cents": cents, "currency": currency, "at": when}

    first = _fact(("r1", [("lamp", 1)]), ("r2", [("shade", 1)]))
    first["refunds"] = [
        refund("r1", 1000, NOW + HOUR),  # day 1
        refund("r2", 500, NOW + DAY + HOUR),  # day 2
        refund("r3", 7, NOW - HOUR),  # before the window
        refund("r4", 9, NOW + 2 * DAY),  # at its end: excluded
    ]
    euros = _fact(("r5", [("lamp", 1)]))
    euros["currency"] = "EUR"
    euros["refunds"] = [refund("r5", 800, NOW + HOUR, "EUR")]
    found = refunds_in([first, euros, {"_id": "no refunds"}], window, "USD")
    assert found.total_cents == 1500
    assert found.by_day == {"2026-03-01": 1000, "2026-03-02": 500}
    assert found.by_product == {"lamp": 1000, "shade": 500}
    assert refunds_in([first, euros], window, "EUR").by_product == {"lamp": 800}


def test_groups_gain_refunds_and_net_and_refund_only_keys_join_them() -> None:
    groups = [
        {"key": "2026-03-02", "orders": 2, "revenue_cents": 3000},
        {"key": "2026-03-01", "orders": 1, "revenue_cents": 1000},
    ]
    merged = with_refunds(groups, {"2026-03-01": 400, "2026-02-27": 100}, sort=True)
    assert [
        (g["key"], g["orders"], g["refunds_cents"], g["net_revenue_cents"]) for g in merged
    ] == [
        ("2026-02-27", 0, 100, -100),
        ("2026-03-01", 1, 400, 600),
        ("2026-03-02", 2, 0, 3000),
    ]
    by_product = with_refunds(groups, {"z": 1, "a": 2}, sort=False)
    assert [g["key"] for g in by_product] == ["2026-03-02", "2026-03-01", "a", "z"]
    assert sum(g["net_revenue_cents"] for g in by_product) == 4000 - 3


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 11)]
    assert percentile(values, 50) == 5.0 and percentile(values, 90) == 9.0
    assert percentile([3.0], 90) == 3.0
    assert duration_stats([]) == DurationStats(count=0)
    assert duration_stats([30.0, 10.0, 20.0]) == DurationStats(3, 20.0, 20.0, 30.0)


def test_fulfilment_times_over_the_windows_shipments_and_deliveries() -> None:
    window = Window(NOW, NOW + DAY)

    def order(
        confirmed_h: float | None, shipped_h: float | None, delivered_h: float | None
    ) -> dict[str, Any]:
        def when(h: float | None) -> datetime | None:
            return None if h is None else NOW + h * HOUR

        fact = {"confirmed_at": when(confirmed_h), "currency": "USD"}
        fact |= {"shipped_at": when(shipped_h), "delivered_at": when(delivered_h)}
        return fact

    facts = [
        order(-2, 1, 20),  # shipped 3 h and delivered 22 h after its confirmation
        order(0, 1, 30),  # 1 h; delivered after the window
        order(-30, -20, 5),  # shipped before the window; delivered 35 h after
        order(None, 2, 3),  # confirmation not seen: no time to measure from
        order(3, 2, None),  # stamped before its confirmation (clocks apart): 0
    ]
    to_ship, to_deliver = fulfilment_times(facts, window, "USD")
    assert (to_ship.count, to_ship.average_seconds) == (3, round((3 + 1 + 0) * 3600 / 3, 3))
    assert (to_ship.p50_seconds, to_ship.p90_seconds) == (3600.0, 3 * 3600.0)
    assert (to_deliver.count, to_deliver.p50_seconds, to_deliver.p90_seconds) == (
        2,
        22 * 3600.0,
        35 * 3600.0,
    )
    euros = [{**facts[0], "currency": "EUR"}]
    assert fulfilment_times(euros, window, "USD") == (DurationStats(), DurationStats())


def test_return_rates_are_units_received_back_over_units_sold() -> None:
    rates = return_rates({"lamp": 4, "shade": 3, "desk": 2, "none": 0}, {"lamp": 1, "desk": 1})
    assert rates == [
        {"product_id": "desk", "sold": 2, "returned": 1, "rate": 0.5},
        {"product_id": "lamp", "sold": 4, "returned": 1, "rate": 0.25},
        {"product_id": "shade", "sold": 3, "returned": 0, "rate": 0.0},
    ]
