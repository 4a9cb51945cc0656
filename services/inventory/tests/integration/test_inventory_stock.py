"""Stock operations called directly in transactions against the real Mongo (no broker).

The conservation walk: seeded random interleavings of reserve (full or partial), release, commit,
expire, adjust and returns of sold units (some sent twice), several at once, keep
`available + reserved + committed == received`, never a negative counter, the held counter equal
to what the reservations hold and the sold one to what they sold less what came back (and
`returned` to what came back), and every counter equal to the sum of the product's ledger rows
(nothing moved unrecorded).
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import pytest
from inventory_service import commands
from inventory_service.deps import Deps
from inventory_service.domain import NewProduct, Stock
from inventory_service.sweeper import ReservationSweeper
from prometheus_client import REGISTRY
from pymongo.asynchronous.client_session import AsyncClientSession

from bus import AlreadyHandled
from contracts import Actor, Event
from contracts.inventory import StockReleased
from kit.errors import Problem
from kit.leases import acquire_lease

from .conftest import MovableClock

pytestmark = pytest.mark.integration

ADMIN = Actor(user_id="admin-1", role="Admin")
STEPS = 30
COUNTERS = ("received", "available", "reserved", "committed")

type Body = Callable[[AsyncClientSession], Awaitable[list[Event]]]
type Op = Callable[[], Awaitable[list[Event]]]


async def tx(deps: Deps, body: Body) -> list[Event]:
    return await deps.write(body)


async def new_product(deps: Deps, stock: int) -> str:
    new = NewProduct(name="p", description="", category="c", price_cents=100, stock_count=stock)
    doc = await commands.create_product(deps, new, ADMIN)
    return str(doc["_id"])


async def check_invariants(deps: Deps, products: list[str]) -> None:
    db = deps.db
    held: dict[str, int] = dict.fromkeys(products, 0)
    sold: dict[str, int] = dict.fromkeys(products, 0)
    back: dict[str, int] = dict.fromkeys(products, 0)
    async for res in db["reservations"].find({"status": {"$in": ["reserved", "committed"]}}):
        target = held if res["status"] == "reserved" else sold
        for line in res["lines"]:
            target[line["product_id"]] += line["quantity"]
    async for record in db["returns"].find({}):
        for line in record["lines"]:
            back[line["product_id"]] += line["quantity"]
    for pid in products:
        doc = await db["products"].find_one({"_id": pid})
        assert doc is not None
        counters = Stock(doc["received"], doc["available"], doc["reserved"], doc["committed"])
        assert counters.conserved, counters
        assert (counters.reserved, counters.committed) == (held[pid], sold[pid] - back[pid]), pid
        assert doc.get("returned", 0) == back[pid], pid
        rows = await deps.store.ledger(pid)
        recorded = Stock(*(sum(row["delta"][c] for row in rows) for c in COUNTERS))
        assert recorded == counters, (pid, rows)


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_random_interleavings_conserve_stock(
    deps: Deps, clock: MovableClock, seed: int
) -> None:
    rng = random.Random(seed)
    products = [await new_product(deps, rng.randint(0, 8)) for _ in range(3)]
    orders: list[str] = []
    # Sold orders (as of the last batch) and what of their lines is still returnable; an order
    # with a return is delivered: nothing releases or commits it any more (`delivered`), nor
    # does anything else in the batch that returns from it (`touched`).
    sold: dict[str, Counter[str]] = {}
    delivered: set[str] = set()
    touched: set[str] = set()
    returns: list[tuple[str, str, list[tuple[str, int]]]] = []

    def give_back() -> Op | None:
        """A return of some sold units (or a return sent again), if there is one to make."""
        if returns and rng.random() < 0.25:
            return_id, oid, lines = rng.choice(returns)  # the same return again: nothing moves
        else:
            candidates = [o for o, left in sold.items() if o not in touched and +left]
            if not candidates:
                return None
            oid = rng.choice(candidates)
            pid = rng.choice(list((+sold[oid]).keys()))
            lines = [(pid, rng.randint(1, sold[oid][pid]))]
            sold[oid][pid] -= lines[0][1]
            return_id = f"r{len(returns)}"
            returns.append((return_id, oid, lines))
        delivered.add(oid)
        touched.add(oid)

        async def restock() -> list[Event]:
            try:
                return await tx(
                    deps,
                    lambda s: commands.restock(
                        deps, s, return_id=return_id, order_id=oid, lines=lines
                    ),
                )
            except AlreadyHandled:
                return []

        return restock

    def op() -> Op:
        kind = rng.choice(["reserve", "reserve", "release", "commit", "expire", "adjust", "return"])
        if kind == "return":
            made = give_back()
            if made is not None:
                return made
            kind = "reserve"
        if kind == "reserve" or not orders or not set(orders) - delivered:
            oid = f"o{len(orders)}"
            orders.append(oid)
            lines = [(rng.choice(products), rng.randint(1, 6)) for _ in range(rng.randint(1, 2))]
            ttl = rng.choice([1.0, 60.0])
            return lambda: tx(
                deps,
                lambda s: commands.reserve(
                    deps, s, order_id=oid, user_id="u", items=lines, ttl_seconds=ttl
                ),
            )
        oid = rng.choice([o for o in orders if o not in delivered])
        touched.add(oid)
        if kind == "release":
            return lambda: tx(
                deps, lambda s: commands.release(deps, s, order_id=oid, reason="cancelled")
            )
        if kind == "commit":
            paid = [(rng.choice(products), rng.randint(1, 3))]
            return lambda: tx(
                deps, lambda s: commands.commit(deps, s, order_id=oid, paid_lines=paid)
            )
        if kind == "expire":
            return lambda: tx(
                deps, lambda s: commands.release(deps, s, order_id=oid, reason="expired")
            )
        pid, delta = rng.choice(products), rng.randint(-5, 6) or 1

        async def adjust() -> list[Event]:
            try:
                await commands.adjust_stock(deps, pid, delta, "count", ADMIN)
            except Problem as problem:
                assert problem.code == "INSUFFICIENT_STOCK"
            return []

        return adjust

    sweeper = ReservationSweeper(deps, interval=1, lease_seconds=5)
    seen: Counter[str] = Counter()
    for _ in range(STEPS):
        # A few operations at once: their transactions overlap and conflict, and are retried.
        touched.clear()
        batch = await asyncio.gather(*(op()() for _ in range(rng.randint(1, 4))))
        seen.update(type(e).__name__ for events in batch for e in events)
        if rng.random() < 0.3:
            seen["expired"] += await sweeper.sweep(clock.advance(2))
        await check_invariants(deps, products)
        await _note_sales(deps, sold)
    print(f"seed {seed}: {sum(seen.values())} events {dict(seen)}")
    # The walk went through the interesting paths, not only the easy one.
    assert {"StockReserved", "StockReleased", "StockReturned"} <= set(seen)


async def _note_sales(deps: Deps, sold: dict[str, Counter[str]]) -> None:
    """Keep `sold` to the orders sold now: those sold since the last batch join with their
    whole lines, those released since (an Admin's cancel of a paid order) leave."""
    committed: set[str] = set()
    async for res in deps.db["reservations"].find({"status": "committed"}):
        committed.add(res["_id"])
        if res["_id"] not in sold:
            sold[res["_id"]] = Counter(
                {line["product_id"]: line["quantity"] for line in res["lines"]}
            )
    for oid in set(sold) - committed:
        del sold[oid]


async def test_expired_reservation_is_released_once_with_two_sweepers(
    deps: Deps, clock: MovableClock
) -> None:
    product = await new_product(deps, 5)
    start = clock()
    await tx(
        deps,
        lambda s: commands.reserve(
            deps, s, order_id="o1", user_id="u", items=[(product, 3)], ttl_seconds=60
        ),
    )
    later = start + timedelta(seconds=61)
    first = ReservationSweeper(deps, interval=1, lease_seconds=30, holder="a")
    second = ReservationSweeper(deps, interval=1, lease_seconds=30, holder="b")
    assert await first.sweep(start) == 0  # not yet expired

    # Without the lease (both sweep at once): the status change lets only one release it.
    counts = await asyncio.gather(first.sweep(later), second.sweep(later))
    assert sorted(counts) == [0, 1]
    # With the lease: only one of them sweeps at all.
    assert await first.run_once(later) == 0
    assert not await _lease_taken(second, later)

    rows = await deps.db["outbox"].find({"type": "StockReleased"}).to_list()
    assert len(rows) == 1
    doc = await deps.db["products"].find_one({"_id": product})
    assert doc is not None and (doc["available"], doc["reserved"]) == (5, 0)
    await check_invariants(deps, [product])


async def _lease_taken(sweeper: ReservationSweeper, now: datetime) -> bool:
    until = now + timedelta(seconds=30)
    return await acquire_lease(sweeper.deps.db, sweeper.name, sweeper.holder, now, until)


async def test_lease_lapses_and_is_given_up(deps: Deps, clock: MovableClock) -> None:
    now = clock()
    first = ReservationSweeper(deps, interval=1, lease_seconds=10, holder="a")
    second = ReservationSweeper(deps, interval=1, lease_seconds=10, holder="b")
    assert await _lease_taken(first, now)
    assert not await _lease_taken(second, now + timedelta(seconds=5))
    assert await _lease_taken(second, now + timedelta(seconds=31))  # the holder died
    await second.stop()  # gives the lease up
    assert await _lease_taken(first, now + timedelta(seconds=32))


async def test_cancel_before_reserve_holds_nothing(deps: Deps) -> None:
    product = await new_product(deps, 5)
    released = await tx(
        deps, lambda s: commands.release(deps, s, order_id="o1", reason="cancelled")
    )
    assert released == []
    events = await tx(
        deps,
        lambda s: commands.reserve(deps, s, order_id="o1", user_id="u", items=[(product, 2)]),
    )
    assert events == []
    doc = await deps.db["products"].find_one({"_id": product})
    assert doc is not None and doc["available"] == 5
    assert not [e for e in events if isinstance(e, StockReleased)]


async def test_a_reservation_that_never_releases_is_quarantined_and_blocks_nothing(
    deps: Deps, clock: MovableClock
) -> None:
    product = await new_product(deps, 5)
    start = clock()
    # Holds stock of a product that is not there: releasing it raises on every pass, and it
    # expired first, so it comes first.
    await deps.db["reservations"].insert_one(
        {
            "_id": "o-broken",
            "order_id": "o-broken",
            "status": "reserved",
            "lines": [{"product_id": "no-such-product", "quantity": 1}],
            "expires_at": start - timedelta(hours=1),
            "created_at": start,
            "updated_at": start,
        }
    )
    await tx(
        deps,
        lambda s: commands.reserve(
            deps, s, order_id="o1", user_id="u", items=[(product, 2)], ttl_seconds=60
        ),
    )
    later = start + timedelta(seconds=61)
    sweeper = ReservationSweeper(deps, interval=1, lease_seconds=30, holder="a", max_failures=2)
    before = REGISTRY.get_sample_value("sweeper_quarantined_total", {"sweeper": sweeper.name})

    assert await sweeper.sweep(later) == 1  # o1 behind the broken row is released
    doc = await deps.db["products"].find_one({"_id": product})
    assert doc is not None and (doc["available"], doc["reserved"]) == (5, 0)
    assert await sweeper.sweep(later) == 0
    after = REGISTRY.get_sample_value("sweeper_quarantined_total", {"sweeper": sweeper.name})
    assert (after or 0) - (before or 0) == 1
    assert await sweeper.quarantine.rows() == ["o-broken"]
    released = await deps.db["reservations"].find_one({"_id": "o1"})
    assert released is not None and released["status"] == "released"
