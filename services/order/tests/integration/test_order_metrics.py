"""The order service's scrape-time gauges on a MongoDB-protocol server: orders per status, and
the orders past their deadline that the sweeper has not closed (what the "orders past a
deadline" alert of deploy/observability reads)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from order_service.domain import Policy
from order_service.metrics import order_sampler
from order_service.sweeper import DeadlineSweeper
from prometheus_client import REGISTRY

from .conftest import Wired, awaiting_payment, new_order

pytestmark = pytest.mark.integration

POLICY = Policy(payment_window=timedelta(minutes=1))


def gauge(name: str, **labels: str) -> float:
    value = REGISTRY.get_sample_value(name, {"service": "order", **labels})
    assert value is not None, f"{name} {labels} not exported"
    return value


async def test_orders_past_their_deadline_are_counted_until_the_sweeper_closes_them(
    wired: Wired,
) -> None:
    sample = order_sampler(wired.deps.store, wired.clock)
    now = wired.clock.now
    for _ in range(2):
        await awaiting_payment(wired, now)
    await wired.deps.store.save(new_order(now), None)  # PENDING, its stock window still open

    await sample()
    assert gauge("shop_orders_by_status", status="AWAITING_PAYMENT") == 2
    assert gauge("shop_orders_by_status", status="PENDING") == 1
    assert gauge("shop_orders_past_deadline") == 0
    assert gauge("shop_orders_past_deadline_seconds") == 0

    # The payment window (1 min) ended 90 s ago and no sweeper ran: both are overdue.
    later = wired.clock.advance(seconds=150)
    await sample()
    assert gauge("shop_orders_past_deadline") == 2
    assert gauge("shop_orders_past_deadline_seconds") == pytest.approx(90)

    sweeper = DeadlineSweeper(wired.deps, interval=60, lease_seconds=30, holder="metrics")
    assert await sweeper.sweep(later) == 2
    await sample()
    assert gauge("shop_orders_past_deadline") == 0
    assert gauge("shop_orders_past_deadline_seconds") == 0
    assert gauge("shop_orders_by_status", status="CANCELLED") == 2
