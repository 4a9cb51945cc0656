"""The short form of the fault suite, inside `make test` (the long form is `make chaos`).

The shop runs as processes (one per service, as `make run` starts them) with its own ports, an
embedded Mongo per service, its own RabbitMQ node (`devkit.rabbit_node`; the machine's shared
broker is never restarted), broker prefix and database prefix. The driver keeps 30 orders in
flight (`CHAOS_IN_FLIGHT`; `make chaos` keeps 200) on every checkout branch while, one at a time,
order, inventory and payment are SIGKILLed and restarted, the broker drops the system's
connections, the broker node restarts (`stop_app`, 10 s, `start_app`), inventory's Mongo is
SIGSTOPped for 10 s, and duplicates of every event type and a few poison messages are published;
some CONFIRMED orders are shipped, delivered and partly returned meanwhile. The broker restart
and the store stall also watch `/readyz`: not ready during the fault, ready after it.

The suite's own verdict (`suite.verdict`) must be empty: every must-be-zero figure 0 (the
processor's ledger included), every order submitted terminal and ended where its branch says
(`suite.BRANCH_OUTCOMES`), no placement failed (retries with the same Idempotency-Key are
counted, not failed), the load reached, each scenario's window with its orders, the poison in
the DLQs. Without `rabbitmqctl` (the broker faults need it) the test fails.
"""

from __future__ import annotations

import os

import pytest

from devkit.bus_testing import can_drop_connections

from .suite import FIGURES, LOAD, MUST_BE_ZERO, REPORT, run, table

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


async def test_short_fault_suite_keeps_every_invariant(amqp_url: str) -> None:
    assert can_drop_connections(), "rabbitmqctl is needed for the broker faults (.ci/run)"
    in_flight = int(os.environ.get("CHAOS_IN_FLIGHT", LOAD["short"]["in_flight"]))
    report = await run(amqp_url, long=False, in_flight=in_flight)
    print(table(report))
    figures = report["figures"]
    assert REPORT.exists()
    assert set(FIGURES) <= set(report)
    assert {name: figures[name] for name in MUST_BE_ZERO} == dict.fromkeys(MUST_BE_ZERO, 0), (
        figures["details"]
    )
    assert figures["max_in_flight"] >= in_flight, figures["max_in_flight"]
    assert figures["terminal"] == figures["submitted"], figures["details"]
    assert report["verdict"] == [], report["verdict"]
