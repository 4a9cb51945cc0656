"""The deadline sweeper on a MongoDB-protocol server: due waits are cancelled once, with their
OrderCancelled in the order's outbox; one instance sweeps at a time under the lease."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from order_service.domain import Policy
from order_service.sweeper import DeadlineSweeper
from prometheus_client import REGISTRY

from contracts.order import OrderCancelled

from .conftest import Wired, awaiting_payment, new_order

pytestmark = pytest.mark.integration

POLICY = Policy(payment_window=timedelta(minutes=1))


def sweeper(wired: Wired, holder: str, max_failures: int = 5) -> DeadlineSweeper:
    return DeadlineSweeper(
        wired.deps, interval=60, lease_seconds=30, holder=holder, max_failures=max_failures
    )


def cancelled(wired: Wired) -> list[str]:
    return sorted(e.correlation_id for e in wired.bus.of_type(OrderCancelled))


async def test_due_orders_are_cancelled_once_with_their_event(wired: Wired) -> None:
    now = wired.clock.now
    order_ids = [await awaiting_payment(wired, now) for _ in range(3)]
    first, second = sweeper(wired, "a"), sweeper(wired, "b")
    assert await first.sweep(now) == 0  # not due yet

    later = now + timedelta(minutes=2)
    # Without the lease, two sweepers racing on the same orders cancel each one once.
    counts = await asyncio.gather(first.sweep(later), second.sweep(later))
    assert sum(counts) == 3
    for order_id in order_ids:
        order = await wired.order(order_id)
        assert (order.status, order.cancel_reason) == ("CANCELLED", "PAYMENT_TIMEOUT")
    # Each cancellation rode in its order's own outbox and was handed over after its commit.
    assert cancelled(wired) == sorted(order_ids)
    assert await first.sweep(later) == 0
    assert cancelled(wired) == sorted(order_ids)


async def test_one_instance_sweeps_while_it_holds_the_lease(wired: Wired) -> None:
    now = wired.clock.now
    first_due = await awaiting_payment(wired, now)
    later = now + timedelta(minutes=2)
    first, second = sweeper(wired, "a"), sweeper(wired, "b")
    assert await first.run_once(later) == 1  # takes the lease (30 s) and sweeps
    second_due = await awaiting_payment(wired, now)
    assert await second.run_once(later + timedelta(seconds=10)) == 0  # a holds the lease
    assert (await wired.order(second_due)).status == "AWAITING_PAYMENT"
    await first.stop()  # gives the lease up: b takes over at once
    assert await second.run_once(later + timedelta(seconds=11)) == 1
    statuses = {(await wired.order(o)).status for o in (first_due, second_due)}
    assert statuses == {"CANCELLED"}


async def test_the_sweeper_reads_the_service_clock(wired: Wired) -> None:
    order_id = await awaiting_payment(wired, wired.clock.now)
    sweep = sweeper(wired, "a")
    wired.clock.advance(seconds=59)
    assert await sweep.run_once() == 0
    wired.clock.advance(seconds=2)
    assert await sweep.run_once() == 1
    assert (await wired.order(order_id)).cancel_reason == "PAYMENT_TIMEOUT"


async def test_an_order_inventory_never_answered_is_cancelled(wired: Wired) -> None:
    now = wired.clock.now
    order = new_order(now)
    await wired.deps.store.save(order, None)
    sweep = sweeper(wired, "a")
    assert await sweep.sweep(now + timedelta(minutes=14)) == 0
    assert await sweep.sweep(now + timedelta(minutes=16)) == 1
    stored = await wired.order(order.order_id)
    assert (stored.status, stored.cancel_reason) == ("CANCELLED", "STOCK_TIMEOUT")


def quarantined_total(sweeper: str) -> float:
    return REGISTRY.get_sample_value("sweeper_quarantined_total", {"sweeper": sweeper}) or 0.0


async def test_an_order_that_never_closes_is_quarantined_and_blocks_nothing(wired: Wired) -> None:
    now = wired.clock.now
    db = wired.deps.db
    # A row an older version wrote that no longer loads: its close raises on every pass, and it
    # is the oldest due row, so it comes first.
    await db["orders"].insert_one(
        {
            "_id": "o-broken",
            "order_id": "o-broken",
            "status": "AWAITING_PAYMENT",
            "deadline": now - timedelta(hours=1),
            "items": "not a list of lines",
        }
    )
    good = await awaiting_payment(wired, now)
    later = now + timedelta(minutes=2)
    sweep = sweeper(wired, "a", max_failures=3)
    before = quarantined_total(sweep.name)

    assert await sweep.sweep(later) == 1  # the broken row fails, the next one closes
    assert (await wired.order(good)).status == "CANCELLED"
    assert quarantined_total(sweep.name) == before
    for _ in range(2):
        assert await sweep.sweep(later) == 0
    # Third failure: set aside, counted once, and later passes no longer try it.
    assert quarantined_total(sweep.name) == before + 1
    assert await sweep.quarantine.rows() == ["o-broken"]
    fresh = await awaiting_payment(wired, now)
    assert await sweep.sweep(later) == 1
    assert (await wired.order(fresh)).status == "CANCELLED"
    assert quarantined_total(sweep.name) == before + 1
    record = await db["sweep_failures"].find_one({"row": "o-broken"})
    assert record is not None and record["failures"] == 3 and record["error"]
