"""The order repository against a MongoDB-protocol server: versions, idempotency keys, indexes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from order_service import store
from order_service.domain import Cause, Order, Policy
from order_service.store import ConcurrentUpdate, OrderNotFound
from pymongo.errors import DuplicateKeyError

from contracts.types import Line

from .conftest import CUSTOMER, RunningOrder, new_order

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)


def placed() -> Order:
    return new_order(NOW)


async def test_an_order_round_trips_with_a_version(order_service: RunningOrder) -> None:
    db = order_service.deps.store
    order = placed()
    await db.save(order, None)
    assert order.version == 1
    loaded = await db.load(order.order_id)
    assert loaded.model_dump() == order.model_dump()
    assert loaded.created_at == NOW and loaded.created_at.tzinfo is not None
    with pytest.raises(OrderNotFound):
        await db.load("o-none")


async def test_conflicting_saves_one_wins_the_other_gets_concurrent_update(
    order_service: RunningOrder,
) -> None:
    db = order_service.deps.store
    order = placed()
    await db.save(order, None)
    first = await db.load(order.order_id)
    second = await db.load(order.order_id)
    first.cancel("u1", "Customer", None, Cause(at=NOW, actor=CUSTOMER))
    second.stock_reserved(
        [Line(product_id="book", quantity=2)], NOW + timedelta(minutes=15), Cause(at=NOW), Policy()
    )
    await db.save(first, None)
    with pytest.raises(ConcurrentUpdate) as lost:
        await db.save(second, None)
    assert lost.value.order_id == order.order_id and lost.value.expected_version == 1
    stored = await db.load(order.order_id)
    assert stored.status == "CANCELLED" and stored.version == 2


async def test_a_second_insert_of_the_same_order_is_a_conflict(order_service: RunningOrder) -> None:
    db = order_service.deps.store
    order = placed()
    twin = order.model_copy(deep=True)
    await db.save(order, None)
    with pytest.raises(ConcurrentUpdate):
        await db.save(twin, None)


async def test_due_lists_orders_past_their_deadline(order_service: RunningOrder) -> None:
    db = order_service.deps.store
    order = placed()
    order.stock_reserved(
        [Line(product_id="book", quantity=2)],
        NOW,
        Cause(at=NOW),
        Policy(payment_window=timedelta(minutes=1)),
    )
    await db.save(order, None)
    assert await db.due(["AWAITING_PAYMENT"], NOW) == []
    assert await db.due(["AWAITING_PAYMENT"], NOW + timedelta(minutes=2)) == [order.order_id]
    assert await db.due(["PAYMENT_FAILED"], NOW + timedelta(minutes=2)) == []


async def remember(
    order_service: RunningOrder, user_id: str, key: str, body: object, order_id: str
) -> store.IdempotentRequest:
    return await order_service.deps.store.remember_request(
        user_id=user_id,
        key=key,
        body_hash=store.request_hash(body),
        order_id=order_id,
        response={"orderId": order_id, "status": "PENDING"},
        now=NOW,
        session=None,
    )


async def test_idempotency_key_keeps_its_first_use(
    order_service: RunningOrder,
) -> None:
    body = {"items": [{"productId": "book", "quantity": 2}], "promoCode": None}
    same_body_reordered = {"promoCode": None, "items": [{"quantity": 2, "productId": "book"}]}
    assert store.request_hash(same_body_reordered) == store.request_hash(body)
    first = await remember(order_service, "u1", "k1", body, "o-1")
    again = await remember(order_service, "u1", "k1", same_body_reordered, "o-2")
    assert again == first and again.order_id == "o-1"
    assert again.response == {"orderId": "o-1", "status": "PENDING"}
    # Another body gets the first use back, its hash telling them apart (the command refuses).
    other = await remember(order_service, "u1", "k1", {"items": []}, "o-3")
    assert other == first and other.request_hash != store.request_hash({"items": []})
    # Keys are per user: another user's k1 is a first use.
    assert (await remember(order_service, "u2", "k1", body, "o-4")).order_id == "o-4"


async def test_indexes_enforce_unique_keys_and_expire_them_after_a_day(
    order_service: RunningOrder,
) -> None:
    info = await order_service.deps.db[store.IDEMPOTENCY].index_information()
    assert info["expiry_ttl"]["expireAfterSeconds"] == 24 * 3600
    row = {"_id": store.idempotency_id("u1", "k1"), "user_id": "u1", "key": "k1"}
    await order_service.deps.db[store.IDEMPOTENCY].insert_one(dict(row))
    with pytest.raises(DuplicateKeyError):  # one row per user and key
        await order_service.deps.db[store.IDEMPOTENCY].insert_one(dict(row))
    orders = await order_service.deps.db[store.ORDERS].index_information()
    assert {"user_recent", "status_recent", "status_deadline"} <= set(orders)
