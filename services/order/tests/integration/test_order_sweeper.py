"""The deadline sweeper on a MongoDB-protocol server: due waits are cancelled once, with their
OrderCancelled in the order's outbox; one instance sweeps at a time under the lease."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from order_service import store
from order_service.domain import Cause, Policy
from order_service.sweeper import DeadlineSweeper
from prometheus_client import REGISTRY

from bus.documents import DocumentOutbox, Home
from contracts.types import Line

from .conftest import RunningOrder, new_order

pytestmark = pytest.mark.integration

POLICY = Policy(payment_window=timedelta(minutes=1))


class HandedOver:
    """Stands in for the relay: the rows each committed cancellation handed over."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def hand_over(self, rows: list[dict[str, Any]], home: Home | None = None) -> None:
        assert home is not None and home[0] == store.ORDERS
        self.rows.extend(rows)


def sweeper(running: RunningOrder, holder: str, relay: HandedOver | None = None) -> DeadlineSweeper:
    deps = running.deps
    return DeadlineSweeper(
        deps.mongo,
        deps.db,
        interval=60,
        lease_seconds=30,
        holder=holder,
        documents=DocumentOutbox(store.ORDERS, relay or HandedOver()),
    )


async def awaiting_payment(running: RunningOrder, now: datetime) -> str:
    order = new_order(now)
    order.stock_reserved([Line(product_id="book", quantity=2)], now, Cause(at=now), POLICY)
    await store.save(running.deps.db, order, None)
    return order.order_id


async def test_due_orders_are_cancelled_once_with_their_event(order_service: RunningOrder) -> None:
    # The clock is read per test: the service's own sweeper holds the lease from real time.
    now = datetime.now(UTC)
    db = order_service.deps.db
    order_ids = [await awaiting_payment(order_service, now) for _ in range(3)]
    relay = HandedOver()
    first, second = sweeper(order_service, "a", relay), sweeper(order_service, "b", relay)
    assert await first.close_due(now) == 0  # not due yet

    later = now + timedelta(minutes=2)
    # Without the lease, two sweepers racing on the same orders cancel each one once.
    counts = await asyncio.gather(first.close_due(later), second.close_due(later))
    assert sum(counts) == 3
    for order_id in order_ids:
        order = await store.load(db, order_id)
        assert (order.status, order.cancel_reason) == ("CANCELLED", "PAYMENT_TIMEOUT")
    # Each cancellation rode in its order's own outbox and was handed over after its commit.
    rows = [r for r in relay.rows if r["type"] == "OrderCancelled"]
    assert sorted(r["correlation_id"] for r in rows) == sorted(order_ids)
    assert await first.close_due(later) == 0


async def test_one_instance_sweeps_while_it_holds_the_lease(order_service: RunningOrder) -> None:
    now = datetime.now(UTC)
    db = order_service.deps.db
    first_due = await awaiting_payment(order_service, now)
    later = now + timedelta(minutes=2)
    first, second = sweeper(order_service, "a"), sweeper(order_service, "b")
    assert await first.run_once(later) == 1  # takes the lease (30 s) and sweeps
    second_due = await awaiting_payment(order_service, now)
    assert await second.run_once(later + timedelta(seconds=10)) == 0  # a holds the lease
    assert (await store.load(db, second_due)).status == "AWAITING_PAYMENT"
    await first.stop()  # gives the lease up: b takes over at once
    assert await second.run_once(later + timedelta(seconds=11)) == 1
    assert {(await store.load(db, o)).status for o in (first_due, second_due)} == {"CANCELLED"}


async def test_an_order_inventory_never_answered_is_cancelled(order_service: RunningOrder) -> None:
    now = datetime.now(UTC)
    order = new_order(now)
    await store.save(order_service.deps.db, order, None)
    sweep = sweeper(order_service, "a")
    assert await sweep.close_due(now + timedelta(minutes=14)) == 0
    assert await sweep.close_due(now + timedelta(minutes=16)) == 1
    stored = await store.load(order_service.deps.db, order.order_id)
    assert (stored.status, stored.cancel_reason) == ("CANCELLED", "STOCK_TIMEOUT")


def quarantined_total(sweeper: str) -> float:
    return REGISTRY.get_sample_value("sweeper_quarantined_total", {"sweeper": sweeper}) or 0.0


async def test_an_order_that_never_closes_is_quarantined_and_blocks_nothing(
    order_service: RunningOrder,
) -> None:
    now = datetime.now(UTC)
    db = order_service.deps.db
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
    good = await awaiting_payment(order_service, now)
    later = now + timedelta(minutes=2)
    sweep = DeadlineSweeper(
        order_service.deps.mongo,
        db,
        interval=60,
        lease_seconds=30,
        holder="a",
        max_failures=3,
    )
    before = quarantined_total(sweep.name)

    assert await sweep.close_due(later) == 1  # the broken row fails, the next one closes
    assert (await store.load(db, good)).status == "CANCELLED"
    assert quarantined_total(sweep.name) == before
    for _ in range(2):
        assert await sweep.close_due(later) == 0
    # Third failure: set aside, counted once, and later passes no longer try it.
    assert quarantined_total(sweep.name) == before + 1
    assert await sweep.quarantine.rows() == ["o-broken"]
    fresh = await awaiting_payment(order_service, now)
    assert await sweep.close_due(later) == 1
    assert (await store.load(db, fresh)).status == "CANCELLED"
    assert quarantined_total(sweep.name) == before + 1
    record = await db["sweep_failures"].find_one({"row": "o-broken"})
    assert record is not None and record["failures"] == 3 and record["error"]
