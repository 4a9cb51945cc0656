"""The benchmark's arithmetic (bench/stats.py): `make bench` reports are only as good as this."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from bench import profiling, stats  # noqa: E402

pytestmark = pytest.mark.unit


def test_percentiles_interpolate_between_ranks() -> None:
    values = [float(v) for v in range(1, 101)]  # 1 … 100
    assert stats.percentile(values, 50) == pytest.approx(50.5)
    assert stats.percentile(values, 99) == pytest.approx(99.01)
    assert stats.percentile(values, 0) == 1.0
    assert stats.percentile(values, 100) == 100.0
    assert stats.percentile([7.0], 99) == 7.0
    assert stats.percentile([3.0, 1.0, 2.0], 50) == 2.0  # order does not matter
    assert stats.percentile([], 50) is None
    with pytest.raises(ValueError):
        stats.percentile(values, 101)


def test_summary() -> None:
    summary = stats.summarize([10.0, 20.0, 30.0, 40.0])
    assert (summary.count, summary.p50, summary.mean, summary.max) == (4, 25.0, 25.0, 40.0)
    assert stats.summarize([]).p99 is None


def test_ceiling_is_the_tighter_substrate_limit() -> None:
    # broker: 2000 msg/s / 20 per order = 100 orders/s; Mongo: 600 writes/s / 12 = 50 orders/s
    assert stats.ceiling(2000, 20, 600, 12) == pytest.approx(50)
    assert stats.ceiling(2000, 40, 600, 12) == pytest.approx(50)
    assert stats.ceiling(2000, 80, 600, 12) == pytest.approx(25)  # now the broker limits
    assert stats.ceiling(2000, None, 600, 12) == pytest.approx(50)  # unknown side: no limit
    assert stats.ceiling(2000, None, 600, None) is None


def test_efficiency_and_per_order_costs() -> None:
    assert stats.efficiency(35, 50) == pytest.approx(0.7)
    assert stats.efficiency(35, None) is None
    assert stats.efficiency(35, 0) is None
    assert stats.per_order(120, 40) == 3
    assert stats.per_order(120, 0) is None
    assert stats.rate(30, 10) == 3
    assert stats.rate(30, 0) == 0
    each, total = stats.cpu_ms_per_order({"order": 0.5, "payment": 0.25}, 50)
    assert each == {"order": 10.0, "payment": 5.0}
    assert total == pytest.approx(15.0)


def test_topic_routing_counts_deliveries_per_queue() -> None:
    assert stats.topic_matches("#", "order.placed")
    assert stats.topic_matches("order.*", "order.placed")
    assert not stats.topic_matches("order.*", "order.approval.required")
    assert stats.topic_matches("order.#", "order.approval.required")
    assert stats.topic_matches("order.placed", "order.placed")
    assert not stats.topic_matches("order.placed", "order.paid")
    published = {"order.placed": 10, "order.paid": 10, "stock.reserved": 10}
    bindings = {
        "analytics": ["#", "order.placed"],  # one copy even when two keys match
        "inventory": ["order.placed", "order.paid"],
        "user": ["order.confirmed"],
    }
    assert stats.deliveries(published, bindings) == {"analytics": 30, "inventory": 20, "user": 0}


def test_profile_summary_from_collapsed_stacks() -> None:
    raw = (
        "main (a.py:1);handle (/v/site-packages/app/h.py:9);encode (/x/src/kit/c.py:3) 30\n"
        "main (a.py:1);handle (/v/site-packages/app/h.py:9) 10\n"
        "garbage\n"
    )
    summary = profiling.summarize(raw)
    assert summary["samples"] == 40
    assert summary["self"] == [("encode (kit/c.py)", 75.0), ("handle (app/h.py)", 25.0)]
    assert ("handle (app/h.py)", 100.0) in summary["inclusive"]  # type: ignore[operator]
