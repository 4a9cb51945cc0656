"""kit.embedded_mongo's correction to mongoeco: no full-collection `_id` scan for string and
ObjectId ids, and duplicates refused exactly as before (numeric ids too)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from bson import ObjectId
from mongoeco.engines import MemoryEngine, memory
from mongoeco.wire import AsyncMongoEcoProxyServer
from pymongo import AsyncMongoClient
from pymongo.errors import BulkWriteError, DuplicateKeyError

from kit.embedded_mongo import mongo_url, plain_ids_skip_scan

pytestmark = pytest.mark.integration


@pytest.fixture
async def client() -> AsyncIterator[AsyncMongoClient[Any]]:
    plain_ids_skip_scan()
    plain_ids_skip_scan()  # idempotent
    server = AsyncMongoEcoProxyServer(engine=MemoryEngine(), host="127.0.0.1", port=0)
    address = await server.start()
    mongo: AsyncMongoClient[Any] = AsyncMongoClient(mongo_url(address.host, address.port))
    try:
        yield mongo
    finally:
        await mongo.close()
        await server.close()


async def test_duplicates_are_still_refused(client: AsyncMongoClient[Any]) -> None:
    rows = client["t"]["rows"]
    await rows.create_index("email", unique=True)
    oid = ObjectId()
    await rows.insert_many([{"_id": f"u{i}", "email": f"{i}@x"} for i in range(50)])
    await rows.insert_one({"_id": oid, "email": "oid@x"})
    await rows.insert_one({"_id": 1, "email": "one@x"})
    for duplicate in (
        {"_id": "u7", "email": "new@x"},
        {"_id": oid, "email": "new@x"},
        {"_id": 1.0, "email": "new@x"},  # numeric ids still compare by value (the scan)
        {"_id": "fresh", "email": "7@x"},  # the unique index still holds
    ):
        with pytest.raises(DuplicateKeyError):
            await rows.insert_one(duplicate)
    with pytest.raises(BulkWriteError):
        await rows.insert_many([{"_id": "a", "email": "a@x"}, {"_id": "u3", "email": "b@x"}])
    assert await rows.count_documents({}) == 53


async def test_no_id_scan_for_plain_ids(
    client: AsyncMongoClient[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A string id is not compared with every stored one; a numeric id still is."""
    rows = client["t"]["rows"]
    await rows.insert_many([{"_id": f"u{i}"} for i in range(300)])
    compared = 0
    equality_key = memory.bson_equality_key

    def counting(value: Any) -> Any:
        nonlocal compared
        compared += 1
        return equality_key(value)

    monkeypatch.setattr(memory, "bson_equality_key", counting)
    await rows.insert_one({"_id": "fresh"})
    assert compared < 20
    compared = 0
    await rows.insert_one({"_id": 3})
    assert compared >= 300
