"""A sweeper's failing rows against a real MongoDB-protocol server: counted per row, quarantined
once at the limit, and failures of the moment never counted."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prometheus_client import REGISTRY
from pymongo import AsyncMongoClient
from pymongo.errors import AutoReconnect

from kit.quarantine import RowQuarantine

pytestmark = pytest.mark.integration


def quarantined_total(sweeper: str) -> float:
    return REGISTRY.get_sample_value("sweeper_quarantined_total", {"sweeper": sweeper}) or 0.0


async def broken() -> bool:
    raise ValueError("this row cannot be closed")


async def closes() -> bool:
    return True


async def test_a_row_is_quarantined_once_at_the_limit(
    mongo_client: AsyncMongoClient[Any], db_name: str
) -> None:
    db = mongo_client[db_name]
    # Two instances of the same sweeper overlapping after a stall share the counts.
    first = RowQuarantine(db, "test.sweeper-a", max_failures=3)
    second = RowQuarantine(db, "test.sweeper-a", max_failures=3)
    before = quarantined_total("test.sweeper-a")

    assert await first.attempt("r1", broken) is None
    assert await first.attempt("r2", closes) is True  # the next row is not held up
    assert await first.rows() == []
    await asyncio.gather(first.attempt("r1", broken), second.attempt("r1", broken))
    assert await second.rows() == ["r1"]
    await first.attempt("r1", broken)  # a straggler past the limit is not counted again
    assert quarantined_total("test.sweeper-a") == before + 1
    record = await db["sweep_failures"].find_one({"row": "r1"})
    assert record is not None
    assert (record["failures"], record["quarantined"]) == (4, True)
    assert record["error"] == "ValueError: this row cannot be closed"
    # Another sweeper's rows are its own.
    assert await RowQuarantine(db, "test.sweeper-b").rows() == []
    await mongo_client.drop_database(db_name)


async def test_a_failure_of_the_moment_ends_the_pass_uncounted(
    mongo_client: AsyncMongoClient[Any], db_name: str
) -> None:
    db = mongo_client[db_name]
    quarantine = RowQuarantine(db, "test.sweeper-c", max_failures=1)

    async def unreachable() -> bool:
        raise AutoReconnect("the database went away")

    with pytest.raises(AutoReconnect):
        await quarantine.attempt("r1", unreachable)
    assert await db["sweep_failures"].count_documents({}) == 0
    assert await quarantine.rows() == []
    await mongo_client.drop_database(db_name)
