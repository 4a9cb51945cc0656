"""Pure inventory rules: outcomes with quantities, alternatives, low-stock crossings, arithmetic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from inventory_service.domain import (
    Candidate,
    InsufficientStock,
    LineRequest,
    LineResult,
    Stock,
    availability_status,
    decide_outcome,
    expiry,
    low_stock_change,
    merge_lines,
    portion,
    rank_alternatives,
)

from devkit.seed_catalogue import demo_catalogue, seed_id

pytestmark = pytest.mark.unit


def test_all_lines_taken_is_all() -> None:
    outcome = decide_outcome([LineResult("a", 2, 2, 5), LineResult("b", 1, 1, 1)])
    assert outcome.kind == "all"
    assert outcome.reserved == (LineRequest("a", 2), LineRequest("b", 1))
    assert outcome.missing == ()


def test_five_asked_three_available_is_partial_with_three_reserved() -> None:
    taken = portion(5, 3)
    outcome = decide_outcome([LineResult("a", 5, taken, 3), LineResult("b", 1, 0, 0)])
    assert outcome.kind == "partial"
    assert outcome.reserved == (LineRequest("a", 3),)
    assert outcome.missing == (LineResult("a", 5, 3, 3), LineResult("b", 1, 0, 0))


def test_nothing_taken_is_none() -> None:
    outcome = decide_outcome([LineResult("a", 2, 0, 0)])
    assert outcome.kind == "none" and outcome.reserved == ()


@pytest.mark.parametrize(
    ("requested", "available", "expected"),
    [(5, 3, 3), (2, 9, 2), (4, 0, 0), (4, -1, 0)],
)
def test_portion_takes_what_is_there(requested: int, available: int, expected: int) -> None:
    assert portion(requested, available) == expected


def test_merge_lines_sums_repeated_products_and_drops_empty_ones() -> None:
    assert merge_lines([("a", 1), ("b", 2), ("a", 3), ("c", 0)]) == [
        LineRequest("a", 4),
        LineRequest("b", 2),
    ]


def test_availability_status() -> None:
    assert availability_status(2, 5) == "available"
    assert availability_status(5, 3) == "partial"
    assert availability_status(1, 0) == "unavailable"


def test_alternatives_in_stock_closest_price_first_at_most_three() -> None:
    candidates = [
        Candidate("far", 5000, 3),
        Candidate("out", 1000, 0),
        Candidate("above", 1100, 1),
        Candidate("below", 900, 2),
        Candidate("exact", 1000, 4),
        Candidate("self", 1000, 9),
    ]
    assert rank_alternatives(1000, candidates, exclude=["self"]) == ["exact", "below", "above"]
    assert rank_alternatives(1000, [], exclude=[]) == []


def test_low_stock_fires_once_per_crossing_and_rearms() -> None:
    assert low_stock_change(available=6, threshold=5, flagged=False) is None
    assert low_stock_change(available=5, threshold=5, flagged=False) == "crossed"
    assert low_stock_change(available=2, threshold=5, flagged=True) is None
    assert low_stock_change(available=9, threshold=5, flagged=True) == "recovered"


def test_stock_adjust_keeps_conservation_and_refuses_negative_available() -> None:
    stock = Stock(received=10, available=4, reserved=3, committed=3)
    assert stock.conserved
    assert stock.adjust("p", 5) == Stock(15, 9, 3, 3)
    assert stock.adjust("p", -4).conserved
    with pytest.raises(InsufficientStock):
        stock.adjust("p", -5)
    assert not Stock(10, 5, 3, 3).conserved
    assert not Stock(0, -1, 1, 0).conserved


def test_a_return_takes_sold_units_back_without_changing_the_equation() -> None:
    stock = Stock(received=10, available=4, reserved=3, committed=3)
    back = stock.take_back("p", 2)
    assert back == Stock(10, 6, 3, 1) and back.conserved
    assert stock.take_back("p", 3).committed == 0
    with pytest.raises(InsufficientStock):
        stock.take_back("p", 4)  # more than was sold


def test_expiry() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert expiry(now, 900) == now + timedelta(minutes=15)


def test_demo_catalogue_is_realistic_and_has_fixed_ids() -> None:
    seeds = demo_catalogue()
    assert 20 <= len(seeds) <= 50
    assert len({pid for pid, _ in seeds}) == len(seeds)
    assert len({new.category for _, new in seeds}) >= 3
    assert seeds[0][0] == seed_id(seeds[0][1].name)
