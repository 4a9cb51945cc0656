"""The short form of the fault suite, inside `make test` (the long form is `make chaos`).

The shop runs as processes (one per service, as `make run` starts them) with its own ports,
embedded Mongo, broker prefix and database prefix; 8 customers (`CHAOS_WORKERS`; `make chaos`
uses 20) keep orders in flight on every checkout branch while order, inventory and payment are
SIGKILLed and restarted, the broker drops the system's connections, and duplicates of every event
type and a few poison messages are published; some CONFIRMED orders are shipped, delivered and
partly returned meanwhile. Every figure of the invariant checker must be 0 except the expected
poison (and the counts of what was fulfilled and returned).
"""

from __future__ import annotations

import os

import pytest

from devkit.bus_testing import can_drop_connections

from .suite import FIGURES, MUST_BE_ZERO, REPORT, run, table

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(400)]


@pytest.mark.skipif(not can_drop_connections(), reason="needs rabbitmqctl for the broker faults")
async def test_short_fault_suite_keeps_every_invariant(amqp_url: str) -> None:
    workers = int(os.environ.get("CHAOS_WORKERS", "8"))
    report = await run(amqp_url, long=False, workers=workers)
    print(table(report))
    figures = report["figures"]
    assert REPORT.exists()
    assert set(FIGURES) <= set(report)
    assert figures["submitted"] >= workers
    assert figures["max_in_flight"] >= workers // 2, figures
    assert figures["terminal"] == figures["submitted"], figures["details"]
    assert {name: figures[name] for name in MUST_BE_ZERO} == dict.fromkeys(MUST_BE_ZERO, 0), (
        figures["details"]
    )
    assert figures["expected_dead_letters"] >= 1  # the poison is where it belongs
    # Some orders went on through shipment and a return received (refunded, restocked).
    assert figures["fulfilled"] >= 1 and figures["returns_received"] >= 1, figures["details"]
    failed = [s for s in report["scenarios"] if not s["ok"]]
    assert not failed, failed
