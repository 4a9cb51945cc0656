"""A received return puts its units back on sale, once per return, through the in-memory bus
and the embedded store: counters, ledger rows, the low-stock flag, a deleted product, and the
conservation equation after sales and returns (committed = sold − returned)."""

from __future__ import annotations

from typing import Any

import pytest
from inventory_service import commands
from inventory_service.deps import Deps
from inventory_service.domain import NewProduct, Stock

from bus.fake import InMemoryBus
from contracts import Actor, Envelope
from contracts.inventory import StockLow, StockReturned
from contracts.order import ReturnReceived
from contracts.types import Line
from kit.errors import Problem

from .conftest import MovableClock, paid, placed

pytestmark = pytest.mark.integration

ADMIN = Actor(user_id="admin-1", role="Admin")
COUNTERS = ("received", "available", "reserved", "committed")


async def product(deps: Deps, stock: int, *, threshold: int = 0) -> str:
    new = NewProduct(
        name=f"p-{stock}",
        description="",
        category="books",
        price_cents=1000,
        stock_count=stock,
        low_stock_threshold=threshold,
    )
    return str((await commands.create_product(deps, new, ADMIN))["_id"])


async def stock(deps: Deps, product_id: str) -> dict[str, int]:
    """The product's counters and its `returned` count."""
    doc = await deps.db["products"].find_one({"_id": product_id})
    assert doc is not None
    return {k: doc.get(k, 0) for k in (*COUNTERS, "returned")}


def received(return_id: str, order_id: str, *lines: tuple[str, int]) -> Envelope[ReturnReceived]:
    event = ReturnReceived(
        return_id=return_id,
        order_id=order_id,
        user_id="u1",
        lines=tuple(Line(product_id=p, quantity=q) for p, q in lines),
        refund_cents=1000,
        payment_id="pay1",
    )
    return Envelope.wrap(event, correlation_id=order_id)


async def handle(bus: InMemoryBus, *envelopes: Envelope[Any]) -> None:
    for envelope in envelopes:
        await bus.publish(envelope)
    await bus.deliver()


async def sold(bus: InMemoryBus, order_id: str, *lines: tuple[str, int]) -> None:
    """An order placed and paid: its lines reserved, then committed."""
    await handle(bus, placed(order_id, *lines), paid(order_id, *lines))


def returned(bus: InMemoryBus) -> list[StockReturned]:
    return [envelope.data for envelope in bus.of_type(StockReturned)]


async def test_a_return_is_restocked_once_with_a_ledger_row_per_line(
    deps: Deps, bus: InMemoryBus, clock: MovableClock
) -> None:
    clock.now = clock.now.replace(microsecond=0)  # what Mongo stores (milliseconds) as is
    mug, lamp = await product(deps, 10), await product(deps, 4)
    await sold(bus, "o1", (mug, 3), (lamp, 2))
    first = received("r1", "o1", (mug, 1), (mug, 1), (lamp, 1))  # mug listed twice: summed
    await handle(bus, first, first)  # redelivered
    # The order service sending ReturnReceived again for the same return (a new envelope).
    again = received("r1", "o1", (mug, 2), (lamp, 1))
    await handle(bus, again)
    assert await bus.dispatch(again, db=deps.db) == []  # even past the bus's inbox

    (event,) = returned(bus)
    assert (event.return_id, event.order_id) == ("r1", "o1")
    assert event.lines == (Line(product_id=mug, quantity=2), Line(product_id=lamp, quantity=1))
    assert await stock(deps, mug) == {
        "received": 10,
        "available": 9,
        "reserved": 0,
        "committed": 1,
        "returned": 2,
    }
    assert await stock(deps, lamp) == {
        "received": 4,
        "available": 3,
        "reserved": 0,
        "committed": 1,
        "returned": 1,
    }
    rows = [r for r in await deps.store.ledger(mug) if r["reason"] == "returned"]
    assert len(rows) == 1
    (row,) = rows
    assert (row["return_id"], row["order_id"], row["at"]) == ("r1", "o1", clock())
    assert row["delta"] == {"received": 0, "available": 2, "reserved": 0, "committed": -2}
    assert await deps.db["returns"].count_documents({}) == 1


async def test_stock_is_conserved_after_sales_and_returns(deps: Deps, bus: InMemoryBus) -> None:
    a, b = await product(deps, 8), await product(deps, 5)
    await sold(bus, "o1", (a, 3), (b, 2))
    await sold(bus, "o2", (a, 2))
    await handle(bus, received("r1", "o1", (a, 1)), received("r2", "o1", (a, 2), (b, 2)))
    await handle(bus, received("r3", "o2", (a, 1)))
    await commands.adjust_stock(deps, a, 4, "delivery", ADMIN)
    await handle(bus, placed("o3", (a, 5)))  # held, not sold

    sales = {a: 5, b: 2}
    for product_id, expected in (
        (a, {"received": 12, "available": 6, "reserved": 5, "committed": 1, "returned": 4}),
        (b, {"received": 5, "available": 5, "reserved": 0, "committed": 0, "returned": 2}),
    ):
        counts = await stock(deps, product_id)
        assert counts == expected
        assert Stock(**{k: counts[k] for k in COUNTERS}).conserved
        assert counts["committed"] + counts["returned"] == sales[product_id]
        rows = await deps.store.ledger(product_id)  # the ledger explains every counter
        assert {c: sum(row["delta"][c] for row in rows) for c in COUNTERS} == {
            c: counts[c] for c in COUNTERS
        }
    assert len(returned(bus)) == 3


async def test_a_restock_clears_low_stock_without_an_alert(deps: Deps, bus: InMemoryBus) -> None:
    kettle = await product(deps, 6, threshold=3)
    await sold(bus, "o1", (kettle, 4))  # 2 left: low
    assert [e.data.product_id for e in bus.of_type(StockLow)] == [kettle]
    await handle(bus, received("r1", "o1", (kettle, 1)))  # 3: still low, no second alert
    doc = await deps.db["products"].find_one({"_id": kettle})
    assert doc is not None and doc["low_stock"] is True
    await handle(bus, received("r2", "o1", (kettle, 3)))  # 6: above the threshold
    doc = await deps.db["products"].find_one({"_id": kettle})
    assert doc is not None and doc["low_stock"] is False
    assert len(bus.of_type(StockLow)) == 1
    # Re-armed: the next sale down to the threshold alerts again.
    await sold(bus, "o2", (kettle, 3))
    assert len(bus.of_type(StockLow)) == 2


async def test_a_deleted_product_takes_its_units_back_but_keeps_them_off_sale(
    deps: Deps, bus: InMemoryBus
) -> None:
    old = await product(deps, 5)
    await sold(bus, "o1", (old, 2))
    await commands.delete_product(deps, old, ADMIN)
    await handle(bus, received("r1", "o1", (old, 2)))
    assert [e.lines for e in returned(bus)] == [(Line(product_id=old, quantity=2),)]
    counts = await stock(deps, old)
    assert (counts["available"], counts["committed"], counts["returned"]) == (5, 0, 2)
    with pytest.raises(Problem) as missing:
        await commands.get_product(deps, old)
    assert missing.value.code == "PRODUCT_NOT_FOUND"
    await handle(bus, placed("o2", (old, 1)))  # still not reservable
    assert (await stock(deps, old))["reserved"] == 0


async def test_a_return_of_more_than_was_sold_changes_nothing(deps: Deps, bus: InMemoryBus) -> None:
    mug = await product(deps, 5)
    await sold(bus, "o1", (mug, 1))
    before = await stock(deps, mug)
    with pytest.raises(RuntimeError, match="committed stock"):
        await bus.dispatch(received("r1", "o1", (mug, 2)), db=deps.db)
    assert await stock(deps, mug) == before
    assert await deps.db["returns"].count_documents({}) == 0
    assert returned(bus) == []
