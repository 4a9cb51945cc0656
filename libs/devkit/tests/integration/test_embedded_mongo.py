"""devkit.embedded_mongo's corrections to mongoeco: no full-collection `_id` scan for string and
ObjectId ids on insert or for `_id: {$in: …}`, with the same answers as before."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from bson import ObjectId
from mongoeco.engines import MemoryEngine, memory
from mongoeco.engines._memory_collection import MemoryCollection
from mongoeco.wire import AsyncMongoEcoProxyServer
from pymongo import AsyncMongoClient
from pymongo.errors import BulkWriteError, DuplicateKeyError

from devkit.embedded_mongo import id_in_uses_keys, mongo_url, plain_ids_skip_scan

pytestmark = pytest.mark.integration


@pytest.fixture
async def client() -> AsyncIterator[AsyncMongoClient[Any]]:
    plain_ids_skip_scan()
    plain_ids_skip_scan()  # idempotent
    id_in_uses_keys()
    id_in_uses_keys()
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


async def test_id_in_filters_by_key_with_the_same_answers(
    client: AsyncMongoClient[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = client["t"]["rows"]
    await rows.insert_many(
        [{"_id": f"r{i:03}", "status": "sent" if i % 2 else "pending"} for i in range(300)]
    )
    await rows.insert_many([{"_id": 7, "status": "pending"}, {"_id": 8.0, "status": "pending"}])
    scanned = 0
    iterate = MemoryCollection._iter_items

    def counting(self: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal scanned
        scanned += 1
        return iterate(self, *args, **kwargs)

    monkeypatch.setattr(MemoryCollection, "_iter_items", counting)
    wanted = ["r010", "r003", "r004", "missing", "r200"]
    found = await rows.find({"_id": {"$in": wanted}, "status": "pending"}).to_list()
    assert [d["_id"] for d in found] == ["r004", "r010", "r200"]  # natural order, filtered
    updated = await rows.update_many(
        {"_id": {"$in": ["r001", "r002"]}, "status": "pending"}, {"$set": {"status": "sent"}}
    )
    assert updated.modified_count == 1
    assert scanned == 0
    # Numeric ids keep mongoeco's by-value matching (8 finds 8.0), through its own path.
    numeric = await rows.find({"_id": {"$in": [7.0, 8]}}).to_list()
    assert sorted(d["_id"] for d in numeric) == [7, 8.0]
    assert await rows.count_documents({"_id": {"$in": []}}) == 0
