"""Inventory's commands and handlers through the in-memory bus and the embedded store.

The order saga's events go in as the consumer would hand them over (`bus.publish` then
`bus.deliver()` runs the service's own HANDLERS), the catalogue's commands are called as the
routes call them, and the sweeper runs on a clock the test moves. Each test asserts what a user
or a peer service notices: the answer events, the stock counters, the ledger, and that a
duplicate changes nothing.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from inventory_service import commands
from inventory_service.bootstrap import background
from inventory_service.deps import Deps
from inventory_service.domain import NewProduct, Stock
from inventory_service.sweeper import ReservationSweeper

from bus.fake import InMemoryBus
from contracts import Actor, Envelope, Event
from contracts.inventory import (
    ProductCreated,
    ProductDeleted,
    ProductUpdated,
    StockAdjusted,
    StockCommitFailed,
    StockCommitted,
    StockLow,
    StockPartiallyReserved,
    StockReleased,
    StockReserved,
    StockUnavailable,
)
from contracts.order import (
    OrderApprovalRequired,
    OrderRejected,
)
from contracts.types import Line, MissingLine
from kit.errors import Problem

from .conftest import TTL_SECONDS, MovableClock, cancelled, paid, placed

pytestmark = pytest.mark.integration

ADMIN = Actor(user_id="admin-1", role="Admin")
COUNTERS = ("received", "available", "reserved", "committed")


# --- helpers ------------------------------------------------------------------------------------


async def product(
    deps: Deps, stock: int, *, price: int = 1000, category: str = "books", threshold: int = 0
) -> str:
    new = NewProduct(
        name=f"p{price}-{stock}",
        description="",
        category=category,
        price_cents=price,
        stock_count=stock,
        low_stock_threshold=threshold,
    )
    return str((await commands.create_product(deps, new, ADMIN))["_id"])


async def counters(deps: Deps, product_id: str) -> dict[str, int]:
    doc = await deps.db["products"].find_one({"_id": product_id})
    assert doc is not None
    return {k: doc[k] for k in COUNTERS}


async def moves(deps: Deps, order_id: str) -> list[str]:
    """The reasons of an order's ledger rows (kept in its reservation)."""
    reservation = await deps.db["reservations"].find_one({"_id": order_id})
    assert reservation is not None
    return [move["reason"] for move in reservation["moves"]]


async def handle(bus: InMemoryBus, *envelopes: Envelope[Any]) -> None:
    """Hand events to the service as its consumer would, and let every handler run."""
    for envelope in envelopes:
        await bus.publish(envelope)
    await bus.deliver()


def answers[E: Event](bus: InMemoryBus, cls: type[E]) -> list[E]:
    return [envelope.data for envelope in bus.of_type(cls)]


def sweeper_of(deps: Deps) -> ReservationSweeper:
    sweeper = background(deps)["sweeper"]
    assert isinstance(sweeper, ReservationSweeper)
    return sweeper


# --- reserve ------------------------------------------------------------------------------------


async def test_an_order_in_stock_is_reserved_whole_until_the_ttl(
    deps: Deps, bus: InMemoryBus, clock: MovableClock
) -> None:
    lamp = await product(deps, 10)
    await handle(bus, placed("o1", (lamp, 3), (lamp, 1)))  # one product twice: the sum is held

    [reserved] = answers(bus, StockReserved)
    assert reserved.lines == (Line(product_id=lamp, quantity=4),)
    assert reserved.expires_at == clock() + timedelta(seconds=TTL_SECONDS)
    assert await counters(deps, lamp) == {
        "received": 10,
        "available": 6,
        "reserved": 4,
        "committed": 0,
    }
    assert await moves(deps, "o1") == ["reserved"]


async def test_a_short_order_is_partially_reserved_with_what_is_missing(
    deps: Deps, bus: InMemoryBus
) -> None:
    scarce, plenty = await product(deps, 3), await product(deps, 10, price=500)
    await handle(bus, placed("o1", (scarce, 5), (plenty, 2)))

    [partial] = answers(bus, StockPartiallyReserved)
    assert partial.reserved == (
        Line(product_id=scarce, quantity=3),
        Line(product_id=plenty, quantity=2),
    )
    assert partial.missing == (MissingLine(product_id=scarce, requested=5, available=3),)
    assert partial.user_id == "u1"
    assert (await counters(deps, scarce))["reserved"] == 3
    assert (await counters(deps, plenty))["available"] == 8
    assert answers(bus, StockReserved) == []


async def test_an_order_out_of_stock_is_unavailable_with_alternatives_and_holds_nothing(
    deps: Deps, bus: InMemoryBus
) -> None:
    gone = await product(deps, 0, price=2000)
    close = await product(deps, 5, price=2100)
    cheaper = await product(deps, 5, price=1800)
    far = await product(deps, 5, price=9000)
    await product(deps, 5, price=20000)
    await product(deps, 5, price=2000, category="home")
    await handle(bus, placed("o1", (gone, 1)))

    [unavailable] = answers(bus, StockUnavailable)
    assert unavailable.missing == (MissingLine(product_id=gone, requested=1, available=0),)
    assert unavailable.alternatives == (close, cheaper, far)
    assert (await counters(deps, close))["available"] == 5
    # A rejection of that order then gives back nothing.
    rejected = OrderRejected(order_id="o1", user_id="u1", reason="OUT_OF_STOCK")
    await handle(bus, Envelope.wrap(rejected, correlation_id="o1"))
    assert answers(bus, StockReleased) == []


async def test_a_duplicate_order_placed_reserves_once_and_writes_one_ledger_row(
    deps: Deps, bus: InMemoryBus
) -> None:
    widget = await product(deps, 10)
    first = placed("o1", (widget, 4))
    await handle(bus, first, first, placed("o1", (widget, 4)))  # a redelivery and a resend

    assert len(answers(bus, StockReserved)) == 1
    assert (await counters(deps, widget))["reserved"] == 4
    assert await deps.db["reservations"].count_documents({"order_id": "o1"}) == 1
    assert await moves(deps, "o1") == ["reserved"]


async def test_the_last_unit_goes_to_one_order_only(deps: Deps, bus: InMemoryBus) -> None:
    last = await product(deps, 1)
    await handle(bus, *(placed(f"o{i}", (last, 1)) for i in range(5)))

    assert [r.order_id for r in answers(bus, StockReserved)] == ["o0"]
    assert len(answers(bus, StockUnavailable)) == 4
    assert await counters(deps, last) == {
        "received": 1,
        "available": 0,
        "reserved": 1,
        "committed": 0,
    }


async def test_low_stock_is_announced_once_per_crossing(deps: Deps, bus: InMemoryBus) -> None:
    kettle = await product(deps, 6, threshold=2)
    await handle(bus, placed("o1", (kettle, 4)), placed("o2", (kettle, 1)))
    assert [low.available for low in answers(bus, StockLow)] == [2]  # not again at 1

    await handle(bus, cancelled("o1"), cancelled("o2"))  # back above the threshold
    await handle(bus, placed("o3", (kettle, 5)))  # and down again: a new crossing
    assert [low.available for low in answers(bus, StockLow)] == [2, 1]


# --- release ------------------------------------------------------------------------------------


async def test_a_cancelled_order_gets_its_stock_back_once(deps: Deps, bus: InMemoryBus) -> None:
    scarce = await product(deps, 3)
    await handle(bus, placed("o1", (scarce, 2)))
    cancel = cancelled("o1")
    await handle(bus, cancel, cancel, cancelled("o1"))

    [released] = answers(bus, StockReleased)
    assert released.reason == "cancelled"
    assert released.lines == (Line(product_id=scarce, quantity=2),)
    assert await counters(deps, scarce) == {
        "received": 3,
        "available": 3,
        "reserved": 0,
        "committed": 0,
    }
    assert await moves(deps, "o1") == ["reserved", "released:cancelled"]


async def test_a_failed_payment_releases_with_its_reason(deps: Deps, bus: InMemoryBus) -> None:
    mug = await product(deps, 5)
    await handle(bus, placed("o1", (mug, 2)), cancelled("o1", "PAYMENT_FAILED"))

    [released] = answers(bus, StockReleased)
    assert released.reason == "paymentFailed"
    assert (await counters(deps, mug))["available"] == 5


async def test_a_cancel_before_the_order_arrives_holds_nothing_later(
    deps: Deps, bus: InMemoryBus
) -> None:
    mug = await product(deps, 5)
    await handle(bus, cancelled("o1"), placed("o1", (mug, 2)))

    assert answers(bus, StockReleased) == [] and answers(bus, StockReserved) == []
    assert (await counters(deps, mug))["available"] == 5


# --- commit -------------------------------------------------------------------------------------


async def test_a_paid_order_is_committed_once(deps: Deps, bus: InMemoryBus) -> None:
    lamp = await product(deps, 6)
    await handle(bus, placed("o1", (lamp, 4)))
    await handle(bus, paid("o1", (lamp, 4)), paid("o1", (lamp, 4)))

    [committed] = answers(bus, StockCommitted)
    assert committed.lines == (Line(product_id=lamp, quantity=4),)
    assert await counters(deps, lamp) == {
        "received": 6,
        "available": 2,
        "reserved": 0,
        "committed": 4,
    }
    assert await moves(deps, "o1") == ["reserved", "committed"]


async def test_an_admin_cancel_after_payment_gives_the_sale_back_and_a_late_payment_sells_nothing(
    deps: Deps, bus: InMemoryBus
) -> None:
    lamp = await product(deps, 6)
    await handle(bus, placed("o1", (lamp, 4)), paid("o1", (lamp, 4)))
    await handle(bus, cancelled("o1"), cancelled("o1"))

    assert len(answers(bus, StockReleased)) == 1
    assert (await counters(deps, lamp))["available"] == 6
    await handle(bus, paid("o1", (lamp, 4)))  # an OrderPaid overtaken by the cancel
    assert len(answers(bus, StockCommitted)) == 1
    assert (await counters(deps, lamp))["committed"] == 0


# --- expiry (the sweeper, on the service's clock) -----------------------------------------------


async def test_the_sweeper_releases_a_hold_once_the_clock_passes_its_expiry(
    deps: Deps, bus: InMemoryBus, clock: MovableClock
) -> None:
    kettle = await product(deps, 5)
    await handle(bus, placed("o1", (kettle, 2)))
    sweeper = sweeper_of(deps)

    assert await sweeper.run_once() == 0  # not expired yet
    clock.advance(TTL_SECONDS + 1)
    assert await sweeper.run_once() == 1
    assert await sweeper.run_once() == 0  # released once

    [released] = answers(bus, StockReleased)
    assert released.reason == "expired"
    assert released.lines == (Line(product_id=kettle, quantity=2),)
    assert (await counters(deps, kettle))["available"] == 5

    # Paid after the hold lapsed: the stock is taken again while it is there.
    await handle(bus, paid("o1", (kettle, 2)))
    assert len(answers(bus, StockCommitted)) == 1
    assert (await counters(deps, kettle))["committed"] == 2
    assert await moves(deps, "o1") == ["reserved", "released:expired", "committed:retaken"]


async def test_an_order_cancelled_after_its_hold_lapsed_sells_nothing_on_a_late_payment(
    deps: Deps, bus: InMemoryBus, clock: MovableClock
) -> None:
    # Under load (the fault suite at 30 in flight): the hold expires, the order is cancelled
    # (its PAID deadline), and its OrderPaid reaches inventory after the OrderCancelled.
    kettle = await product(deps, 5)
    await handle(bus, placed("o1", (kettle, 2)))
    clock.advance(TTL_SECONDS + 1)
    assert await sweeper_of(deps).run_once() == 1
    await handle(bus, cancelled("o1"))
    await handle(bus, paid("o1", (kettle, 2)))

    assert answers(bus, StockCommitted) == []
    assert await counters(deps, kettle) == {
        "received": 5,
        "available": 5,
        "reserved": 0,
        "committed": 0,
    }


async def test_a_commit_fails_when_the_lapsed_hold_cannot_be_taken_again(
    deps: Deps, bus: InMemoryBus, clock: MovableClock
) -> None:
    rare = await product(deps, 1)
    await handle(bus, placed("o1", (rare, 1)))
    clock.advance(TTL_SECONDS + 1)
    assert await commands.expire_reservations(deps) == 1
    await commands.adjust_stock(deps, rare, -1, "damaged", ADMIN)  # the freed unit is gone

    await handle(bus, paid("o1", (rare, 1)))
    [failed] = answers(bus, StockCommitFailed)
    assert failed.lines == (Line(product_id=rare, quantity=1),)
    assert answers(bus, StockCommitted) == []
    assert await counters(deps, rare) == dict.fromkeys(COUNTERS, 0)


async def test_an_order_awaiting_approval_keeps_its_stock_until_the_deadline(
    deps: Deps, bus: InMemoryBus, clock: MovableClock
) -> None:
    safe = await product(deps, 3)
    await handle(bus, placed("o1", (safe, 2)))
    deadline = clock() + timedelta(hours=24)
    waiting = OrderApprovalRequired(
        order_id="o1", user_id="u1", reason="highValue", total_cents=900_000, hold_until=deadline
    )
    await handle(bus, Envelope.wrap(waiting, correlation_id="o1"))
    sweeper = sweeper_of(deps)

    clock.advance(3600)  # long past the usual expiry
    assert await sweeper.run_once() == 0
    assert (await counters(deps, safe))["reserved"] == 2
    clock.now = deadline + timedelta(seconds=1)
    assert await sweeper.run_once() == 1
    assert (await counters(deps, safe))["reserved"] == 0


# --- the catalogue's commands --------------------------------------------------------------------


async def test_the_catalogue_commands_announce_each_change(
    deps: Deps, bus: InMemoryBus, clock: MovableClock
) -> None:
    new = NewProduct(
        name="Lamp", description="LED", category="home", price_cents=3999, stock_count=3
    )
    doc = await commands.create_product(deps, new, ADMIN)
    lamp = doc["_id"]
    assert doc["created_at"] == clock() and doc["created_by"] == "admin-1"
    [created] = answers(bus, ProductCreated)
    assert (created.product_id, created.name, created.price_cents) == (lamp, "Lamp", 3999)
    assert [low.available for low in answers(bus, StockLow)] == [3]  # opens at its threshold
    ledger = await deps.store.ledger(lamp)
    assert [(row["reason"], row["delta"]["received"]) for row in ledger] == [("opening stock", 3)]

    updated = await commands.update_product(deps, lamp, {"price_cents": 2999}, ADMIN)
    assert updated["price_cents"] == 2999
    assert [u.price_cents for u in answers(bus, ProductUpdated)] == [2999]

    adjusted = await commands.adjust_stock(deps, lamp, 10, "delivery", ADMIN)
    assert adjusted["available"] == 13 and adjusted["received"] == 13
    assert [(a.delta, a.available) for a in answers(bus, StockAdjusted)] == [(10, 13)]
    assert [row["reason"] for row in await deps.store.ledger(lamp)] == ["opening stock", "delivery"]

    await commands.delete_product(deps, lamp, ADMIN)
    assert [d.product_id for d in answers(bus, ProductDeleted)] == [lamp]
    with pytest.raises(Problem) as missing:
        await commands.get_product(deps, lamp)
    assert (missing.value.status, missing.value.code) == (404, "PRODUCT_NOT_FOUND")


async def test_writing_off_more_than_is_available_is_refused_and_changes_nothing(
    deps: Deps, bus: InMemoryBus
) -> None:
    mug = await product(deps, 5)
    await handle(bus, placed("o1", (mug, 3)))  # only 2 left available
    published = len(bus.published)

    with pytest.raises(Problem) as refused:
        await commands.adjust_stock(deps, mug, -3, "damaged", ADMIN)
    assert (refused.value.status, refused.value.code) == (409, "INSUFFICIENT_STOCK")
    assert await counters(deps, mug) == {
        "received": 5,
        "available": 2,
        "reserved": 3,
        "committed": 0,
    }
    assert len(bus.published) == published  # no event
    with pytest.raises(Problem) as unknown:
        await commands.adjust_stock(deps, "no-such-product", 1, "delivery", ADMIN)
    assert unknown.value.code == "PRODUCT_NOT_FOUND"


# --- conservation -------------------------------------------------------------------------------


async def test_stock_is_conserved_and_explained_by_the_ledger_through_a_saga_mix(
    deps: Deps, bus: InMemoryBus, clock: MovableClock
) -> None:
    a, b = await product(deps, 8), await product(deps, 4)
    await handle(
        bus,
        placed("o1", (a, 3), (b, 1)),  # reserved, then paid
        placed("o2", (a, 2)),  # reserved, then cancelled
        placed("o3", (b, 5)),  # partial: 3 of b
        placed("o4", (a, 1)),  # reserved, then expired
        paid("o1", (a, 3), (b, 1)),
        cancelled("o2"),
    )
    await commands.adjust_stock(deps, a, 5, "delivery", ADMIN)
    clock.advance(TTL_SECONDS + 1)
    assert await sweeper_of(deps).run_once() == 2  # o3 and o4

    for product_id, expected in (
        (a, {"received": 13, "available": 10, "reserved": 0, "committed": 3}),
        (b, {"received": 4, "available": 3, "reserved": 0, "committed": 1}),
    ):
        stock = await counters(deps, product_id)
        assert stock == expected
        assert Stock(**stock).conserved  # available + reserved + committed == received
        rows = await deps.store.ledger(product_id)
        assert {c: sum(row["delta"][c] for row in rows) for c in COUNTERS} == stock
