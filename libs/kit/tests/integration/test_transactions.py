"""The transaction helper against a real MongoDB-protocol server."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.errors import DuplicateKeyError

from kit.transactions import Session, run_in_transaction

pytestmark = pytest.mark.integration


async def test_contended_decrements_all_commit_exactly_once(
    mongo_client: AsyncMongoClient[Any], db_name: str
) -> None:
    db = mongo_client[db_name]
    await db.stock.insert_one({"_id": "p1", "available": 100})
    bodies_run = 0

    async def take_one(session: Session) -> int:
        nonlocal bodies_run
        bodies_run += 1
        result = await db.stock.update_one(
            {"_id": "p1", "available": {"$gte": 1}}, {"$inc": {"available": -1}}, session=session
        )
        await db.ledger.insert_one({"product": "p1", "delta": -1}, session=session)
        return result.modified_count

    results = await asyncio.gather(*(run_in_transaction(mongo_client, take_one) for _ in range(30)))

    assert results == [1] * 30
    assert (await db.stock.find_one({"_id": "p1"}))["available"] == 70
    # Conservation: every committed decrement has exactly one ledger row, none from failed tries.
    assert await db.ledger.count_documents({}) == 30
    assert bodies_run >= 30


async def test_a_business_error_aborts_and_propagates(
    mongo_client: AsyncMongoClient[Any], db_name: str
) -> None:
    db = mongo_client[db_name]

    async def write_then_fail(session: Session) -> None:
        await db.orders.insert_one({"_id": "o1"}, session=session)
        raise ValueError("out of stock")

    with pytest.raises(ValueError, match="out of stock"):
        await run_in_transaction(mongo_client, write_then_fail)
    assert await db.orders.count_documents({}) == 0


async def test_a_duplicate_key_is_not_retried(
    mongo_client: AsyncMongoClient[Any], db_name: str
) -> None:
    db = mongo_client[db_name]
    await db.keys.insert_one({"_id": "k"})
    attempts = 0

    async def insert_duplicate(session: Session) -> None:
        nonlocal attempts
        attempts += 1
        await db.keys.insert_one({"_id": "k"}, session=session)

    with pytest.raises(DuplicateKeyError):
        await run_in_transaction(mongo_client, insert_duplicate)
    assert attempts == 1


async def test_serial_transactions_run_one_at_a_time(
    mongo_client: AsyncMongoClient[Any], db_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MONGO_SERIAL_TRANSACTIONS=1: a process's transactions never overlap, so none conflicts."""
    import kit.transactions

    monkeypatch.setattr(kit.transactions, "_SERIAL", True)
    db = mongo_client[db_name]
    await db.stock.insert_one({"_id": "p1", "available": 100})
    inside = overlaps = bodies_run = 0

    async def take_one(session: Session) -> None:
        nonlocal inside, overlaps, bodies_run
        inside += 1
        bodies_run += 1
        overlaps += inside > 1
        await db.stock.update_one({"_id": "p1"}, {"$inc": {"available": -1}}, session=session)
        await asyncio.sleep(0)
        inside -= 1

    await asyncio.gather(*(run_in_transaction(mongo_client, take_one) for _ in range(20)))

    assert overlaps == 0
    assert bodies_run == 20  # no conflict, so no body ran twice
    assert (await db.stock.find_one({"_id": "p1"}))["available"] == 80
