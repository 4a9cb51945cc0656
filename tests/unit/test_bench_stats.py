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


def test_commands_fall_into_reads_writes_commits_and_other() -> None:
    assert [stats.command_class(c) for c in ("find", "getMore", "aggregate", "count")] == [
        "reads"
    ] * 4
    assert [stats.command_class(c) for c in ("insert", "update", "delete", "findAndModify")] == [
        "writes"
    ] * 4
    assert stats.command_class("commitTransaction") == "commits"
    assert stats.command_class("abortTransaction") == "commits"
    assert stats.command_class("hello") == "other"
    assert stats.command_class("endSessions") == "other"
    assert stats.by_class({"find": 3, "getMore": 1, "insert": 2, "hello": 1}) == {
        "reads": 4,
        "writes": 2,
        "commits": 0,
        "other": 1,
    }


def test_counter_deltas_take_new_keys_from_zero() -> None:
    before = {("order", "find"): 10, ("order", "insert"): 4}
    after = {("order", "find"): 25, ("order", "insert"): 4, ("payment", "find"): 3}
    assert stats.counter_deltas(before, after) == {
        ("order", "find"): 15,
        ("order", "insert"): 0,
        ("payment", "find"): 3,
    }


def window(**overrides: object) -> stats.Window:
    """One window over 10 orders: order and payment on servers of their own, a shipping service
    (fulfilment) with its own server too, the bench's own probes unnamed."""
    values: dict[str, object] = {
        "cpu_s": {
            "order": 0.4,
            "payment": 0.3,
            "gateway": 0.1,
            "shipping": 0.2,
            "mongo": 0.9,
            "rabbitmq (shared)": 0.25,
            "smtp-sink": 0.05,
        },
        "mongo_cpu_s": {"order": 0.5, "payment": 0.3, "shipping": 0.1},
        "writes": {"order": 200, "payment": 100, "shipping": 40},
        "commands": {
            ("order", "find"): 100,
            ("order", "insert"): 50,
            ("order", "commitTransaction"): 40,
            ("order", "hello"): 2,
            ("payment", "findAndModify"): 30,
            ("payment", "getMore"): 10,
            ("shipping", "update"): 20,
            (stats.UNNAMED, "serverStatus"): 6,  # the bench's own reads of the counters
        },
    }
    values.update(overrides)
    return stats.Window(**values)  # type: ignore[arg-type]


def test_checkout_figures_leave_fulfilment_out() -> None:
    checkout = stats.part_figures(window(), 10, fulfilment=False)
    # Services' processes outside fulfilment: order 0.4 + payment 0.3 + gateway 0.1 s.
    assert checkout["cpu_ms_per_order"] == pytest.approx(80)
    # Their servers: order 0.5 + payment 0.3 s (not shipping's 0.1).
    assert checkout["mongo_cpu_ms_per_order"] == pytest.approx(80)
    # + the broker 0.25 and the SMTP sink 0.05 s.
    assert checkout["cpu_ms_per_order_all_in"] == pytest.approx(80 + 80 + 30)
    assert checkout["writes_per_order"] == pytest.approx(30)
    # 192 commands of order, 40 of payment; not shipping's 20 nor the bench's 6.
    assert checkout["mongo_round_trips_per_order"] == pytest.approx(23.2)
    assert checkout["mongo_reads_per_order"] == pytest.approx(11)
    assert checkout["mongo_writes_per_order"] == pytest.approx(8)
    assert checkout["mongo_commits_per_order"] == pytest.approx(4)
    assert checkout["mongo_other_per_order"] == pytest.approx(0.2)

    shipping = stats.part_figures(window(), 10, fulfilment=True)
    assert shipping["cpu_ms_per_order"] == pytest.approx(20)
    assert shipping["mongo_cpu_ms_per_order"] == pytest.approx(10)
    assert shipping["cpu_ms_per_order_all_in"] == pytest.approx(30)  # no broker, no sink
    assert shipping["writes_per_order"] == pytest.approx(4)
    assert shipping["mongo_round_trips_per_order"] == pytest.approx(2)


def test_one_shared_server_counts_whole_for_the_checkout() -> None:
    shared = window(mongo_cpu_s={"": 0.9}, writes={"": 340})
    checkout = stats.part_figures(shared, 10, fulfilment=False)
    assert checkout["mongo_cpu_ms_per_order"] == pytest.approx(90)
    assert checkout["writes_per_order"] == pytest.approx(34)
    assert stats.part_figures(shared, 10, fulfilment=True)["writes_per_order"] == 0
    # Servers not told apart (no process found per server): all of `mongo`.
    unknown = stats.part_figures(window(mongo_cpu_s={}), 10, fulfilment=False)
    assert unknown["mongo_cpu_ms_per_order"] == pytest.approx(90)


def test_round_trips_are_unknown_when_a_server_does_not_count_or_nothing_confirmed() -> None:
    uncounted = stats.part_figures(window(counting=False), 10, fulfilment=False)
    assert uncounted["mongo_round_trips_per_order"] is None
    assert uncounted["mongo_reads_per_order"] is None
    assert uncounted["writes_per_order"] == pytest.approx(30)  # the opcounters still count
    nothing = stats.part_figures(window(), 0, fulfilment=False)
    assert nothing["mongo_round_trips_per_order"] is None
    assert nothing["cpu_ms_per_order_all_in"] is None


def test_per_service_breakdown() -> None:
    breakdown = stats.service_breakdown(window(), 10)
    assert sorted(breakdown) == ["gateway", "order", "payment", "shipping"]
    assert breakdown["order"] == {
        "fulfilment": False,
        "cpu_ms": 40.0,
        "mongo_cpu_ms": 50.0,
        "writes": 20.0,
        "round_trips": 19.2,
        "round_trips_by_class": {"reads": 10.0, "writes": 5.0, "commits": 4.0, "other": 0.2},
        "round_trips_by_command": {
            "commitTransaction": 4.0,
            "find": 10.0,
            "hello": 0.2,
            "insert": 5.0,
        },
    }
    assert breakdown["shipping"]["fulfilment"] is True
    assert breakdown["gateway"]["mongo_cpu_ms"] is None  # no server of its own
    assert breakdown["gateway"]["round_trips"] == 0
    shared = stats.service_breakdown(window(mongo_cpu_s={"": 0.9}, writes={"": 340}), 10)
    assert shared["order"]["writes"] is None  # a shared server's writes are not split
    assert "" not in shared
    assert stats.service_breakdown(window(counting=False), 10)["order"]["round_trips"] is None
