"""Inventory saga steps through the real broker: reserve, partial, release, commit, expire."""

from __future__ import annotations

import asyncio
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from contracts import Envelope
from contracts.order import (
    OrderApprovalRequired,
    OrderRejected,
)
from devkit.bus_testing import eventually

from .conftest import Running, Start, cancelled, paid, placed, token

pytestmark = pytest.mark.integration

ADMIN = token("Admin", "admin-1")
ANSWERS = ("StockReserved", "StockPartiallyReserved", "StockUnavailable")
COUNTERS = ("received", "available", "reserved", "committed")


async def create(inv: Running, name: str, stock: int, price: int = 1000, **extra: Any) -> str:
    body = {
        "name": name,
        "description": f"{name} for tests",
        "category": extra.pop("category", "books"),
        "priceCents": price,
        "stockCount": stock,
        **extra,
    }
    response = await inv.http.post("/api/v1/products", json=body, headers=ADMIN)
    assert response.status_code == 201, response.text
    return str(response.json()["productId"])


async def stock(inv: Running, product_id: str) -> dict[str, int]:
    doc = await inv.deps.db["products"].find_one({"_id": product_id})
    assert doc is not None
    return {k: doc[k] for k in ("received", "available", "reserved", "committed")}


def order_id() -> str:
    return f"o-{secrets.token_hex(4)}"


async def test_twenty_concurrent_orders_for_the_last_unit(start_inventory: Start) -> None:
    async with start_inventory(broker=True) as inv:
        last = await create(inv, "Last unit", 1)
        orders = [order_id() for _ in range(20)]
        started = time.monotonic()
        await asyncio.gather(*(inv.publish(placed(o, (last, 1))) for o in orders))
        await eventually(
            lambda: sum(len(inv.emitted(t)) for t in ANSWERS) >= 20,
            timeout=30,
            what="20 answers",
        )
        elapsed = time.monotonic() - started
        reserved = inv.emitted("StockReserved")
        unavailable = inv.emitted("StockUnavailable")
        assert len(reserved) == 1 and len(unavailable) == 19
        assert reserved[0]["data"]["lines"] == [{"productId": last, "quantity": 1}]
        assert {e["data"]["orderId"] for e in reserved + unavailable} == set(orders)
        assert all(
            e["data"]["missing"] == [{"productId": last, "requested": 1, "available": 0}]
            for e in unavailable
        )
        assert await stock(inv, last) == {
            "received": 1,
            "available": 0,
            "reserved": 1,
            "committed": 0,
        }
        print(f"20 concurrent OrderPlaced answered in {elapsed:.2f}s")


async def test_partial_reservation_reports_quantities_and_release_returns_them(
    start_inventory: Start,
) -> None:
    async with start_inventory(broker=True) as inv:
        scarce = await create(inv, "Scarce", 3, low_stock_threshold=0)
        plenty = await create(inv, "Plenty", 10)
        oid = order_id()
        await inv.publish(placed(oid, (scarce, 5), (plenty, 2)))
        await eventually(lambda: inv.emitted("StockPartiallyReserved"), what="partial")
        data = inv.emitted("StockPartiallyReserved")[0]["data"]
        assert data["reserved"] == [
            {"productId": scarce, "quantity": 3},
            {"productId": plenty, "quantity": 2},
        ]
        assert data["missing"] == [{"productId": scarce, "requested": 5, "available": 3}]
        assert data["userId"] == "u1" and data["expiresAt"]
        assert (await stock(inv, scarce))["reserved"] == 3

        # The customer declines: the order is cancelled, twice over (a redelivery and a resend).
        cancel = cancelled(oid)
        await inv.publish(cancel)
        await inv.publish(cancel)
        await inv.publish(cancelled(oid))
        await eventually(lambda: inv.emitted("StockReleased"), what="release")
        await asyncio.sleep(0.5)  # nothing else may arrive
        released = inv.emitted("StockReleased")
        assert len(released) == 1
        assert released[0]["data"]["reason"] == "cancelled"
        assert released[0]["data"]["lines"] == data["reserved"]
        assert await stock(inv, scarce) == {
            "received": 3,
            "available": 3,
            "reserved": 0,
            "committed": 0,
        }
        assert (await stock(inv, plenty))["available"] == 10


async def test_duplicate_order_placed_reserves_once(start_inventory: Start) -> None:
    async with start_inventory(broker=True) as inv:
        product = await create(inv, "Widget", 10)
        oid = order_id()
        first = placed(oid, (product, 4))
        await inv.publish(first)
        await inv.publish(first)  # the same envelope again (a redelivery)
        await inv.publish(placed(oid, (product, 4)))  # the same order in a new envelope
        await eventually(lambda: inv.emitted("StockReserved"), what="reserved")
        await asyncio.sleep(0.5)
        assert len(inv.emitted("StockReserved")) == 1
        assert await inv.deps.db["reservations"].count_documents({"order_id": oid}) == 1
        assert (await stock(inv, product))["reserved"] == 4


async def test_unavailable_lists_alternatives_and_rejection_holds_nothing(
    start_inventory: Start,
) -> None:
    async with start_inventory(broker=True) as inv:
        gone = await create(inv, "Gone", 0, price=2000)
        close = await create(inv, "Close", 5, price=2100)
        cheaper = await create(inv, "Cheaper", 5, price=1800)
        far = await create(inv, "Far", 5, price=9000)
        await create(inv, "Farthest", 5, price=20000)
        await create(inv, "Other", 5, price=2000, category="home")
        oid = order_id()
        await inv.publish(placed(oid, (gone, 1)))
        await eventually(lambda: inv.emitted("StockUnavailable"), what="unavailable")
        assert inv.emitted("StockUnavailable")[0]["data"]["alternatives"] == [close, cheaper, far]

        rejected = OrderRejected(order_id=oid, user_id="u1", reason="OUT_OF_STOCK")
        await inv.publish(Envelope.wrap(rejected, correlation_id=oid))
        await asyncio.sleep(0.5)
        assert inv.emitted("StockReleased") == []


async def test_paid_order_commits_once(start_inventory: Start) -> None:
    async with start_inventory(broker=True) as inv:
        product = await create(inv, "Lamp", 6, low_stock_threshold=2)
        oid = order_id()
        await inv.publish(placed(oid, (product, 4)))
        await eventually(lambda: inv.emitted("StockReserved"), what="reserved")
        # Emitted with the reservation, published right after it.
        await eventually(lambda: inv.emitted("StockLow"), what="low stock")
        assert [e["data"]["available"] for e in inv.emitted("StockLow")] == [2]
        await inv.publish(paid(oid, (product, 4)))
        await inv.publish(paid(oid, (product, 4)))
        await eventually(lambda: inv.emitted("StockCommitted"), what="committed")
        await asyncio.sleep(0.3)
        committed = inv.emitted("StockCommitted")
        assert len(committed) == 1
        assert committed[0]["data"]["lines"] == [{"productId": product, "quantity": 4}]
        assert await stock(inv, product) == {
            "received": 6,
            "available": 2,
            "reserved": 0,
            "committed": 4,
        }
        # The order's ledger rows ride in its reservation, written with each status; the
        # catalogue's ledger holds the opening stock only. Together they account for the stock.
        db = inv.deps.db
        reservation = await db["reservations"].find_one({"_id": oid})
        assert reservation is not None
        assert [(m["reason"], m["delta"]) for m in reservation["moves"]] == [
            ("reserved", {"received": 0, "available": -4, "reserved": 4, "committed": 0}),
            ("committed", {"received": 0, "available": 0, "reserved": -4, "committed": 4}),
        ]
        assert [r["reason"] for r in await db["stock_ledger"].find().to_list()] == ["opening stock"]
        rows = await inv.deps.store.ledger(product)
        assert {c: sum(r["delta"][c] for r in rows) for c in COUNTERS} == await stock(inv, product)
        # An Admin cancelled the order while PAID (the order is the authority; payment voids):
        # the sale is given back, once.
        await inv.publish(cancelled(oid))
        await inv.publish(cancelled(oid))
        await eventually(lambda: inv.emitted("StockReleased"), what="sale given back")
        await asyncio.sleep(0.3)
        assert len(inv.emitted("StockReleased")) == 1
        assert await stock(inv, product) == {
            "received": 6,
            "available": 6,
            "reserved": 0,
            "committed": 0,
        }
        # An OrderPaid overtaken by that cancel sells nothing.
        await inv.publish(paid(oid, (product, 4)))
        await asyncio.sleep(0.3)
        assert len(inv.emitted("StockCommitted")) == 1
        assert (await stock(inv, product))["committed"] == 0


async def test_the_sweeper_releases_an_expired_reservation(start_inventory: Start) -> None:
    async with start_inventory(broker=True, reservation_ttl_seconds=0.5) as inv:
        product = await create(inv, "Kettle", 5)
        oid = order_id()
        await inv.publish(placed(oid, (product, 2)))
        await eventually(lambda: inv.emitted("StockReleased"), what="expiry release")
        released = inv.emitted("StockReleased")[0]["data"]
        assert released == {
            "orderId": oid,
            "lines": [{"productId": product, "quantity": 2}],
            "reason": "expired",
        }
        assert (await stock(inv, product))["available"] == 5

        # Paid after the hold expired: stock is re-taken when it is still there.
        await inv.publish(paid(oid, (product, 2)))
        await eventually(lambda: inv.emitted("StockCommitted"), what="re-taken commit")
        assert (await stock(inv, product))["committed"] == 2


async def test_commit_fails_when_the_expired_hold_cannot_be_retaken(
    start_inventory: Start,
) -> None:
    async with start_inventory(broker=True, reservation_ttl_seconds=0.3) as inv:
        product = await create(inv, "Rare", 1)
        first = order_id()
        await inv.publish(placed(first, (product, 1)))
        await eventually(lambda: inv.emitted("StockReleased"), what="expiry release")
        # The freed unit is written off (an Admin's adjustment: no hold of another order that
        # could itself expire before the OrderPaid is handled on a slow machine).
        written_off = await inv.http.post(
            f"/api/v1/products/{product}/stock",
            json={"delta": -1, "reason": "damaged"},
            headers=ADMIN,
        )
        assert written_off.status_code == 200, written_off.text
        await inv.publish(paid(first, (product, 1)))
        await eventually(lambda: inv.emitted("StockCommitFailed"), what="commit failed")
        failed = inv.emitted("StockCommitFailed")[0]["data"]
        assert failed["orderId"] == first and failed["lines"] == [
            {"productId": product, "quantity": 1}
        ]
        assert inv.emitted("StockCommitted") == []
        assert await stock(inv, product) == {
            "received": 0,
            "available": 0,
            "reserved": 0,
            "committed": 0,
        }


async def test_an_order_awaiting_approval_keeps_its_stock_until_the_approval_deadline(
    start_inventory: Start,
) -> None:
    async with start_inventory(broker=True, reservation_ttl_seconds=60) as inv:
        product = await create(inv, "Safe", 3)
        oid = order_id()
        await inv.publish(placed(oid, (product, 2)))
        await eventually(lambda: inv.emitted("StockReserved"), what="reserved")
        hold_until = datetime.now(UTC) + timedelta(hours=24)
        waiting = OrderApprovalRequired(
            order_id=oid,
            user_id="u1",
            reason="highValue",
            total_cents=900_000,
            hold_until=hold_until,
        )
        await inv.publish(Envelope.wrap(waiting, correlation_id=oid))

        async def extended() -> bool:
            hold = await inv.deps.db["reservations"].find_one({"_id": oid})
            return hold is not None and hold["expires_at"] > datetime.now(UTC) + timedelta(hours=1)

        await eventually(extended, what="the hold extended")
        # A sweep an hour later (long past the usual expiry) leaves it held; after the deadline
        # it is released.
        sweeper = inv.app.state.sweeper
        assert await sweeper.sweep(datetime.now(UTC) + timedelta(hours=1)) == 0
        assert (await stock(inv, product))["reserved"] == 2
        assert await sweeper.sweep(hold_until + timedelta(seconds=1)) == 1
        assert (await stock(inv, product))["reserved"] == 0
