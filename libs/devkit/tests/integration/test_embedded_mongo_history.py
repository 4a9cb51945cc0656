"""`python -m devkit.embedded_mongo` keeps a short change-stream history (the soak's finding):
mongoeco keeps every write committed in a transaction as a change event, 10 000 by default,
whether anyone watches or not."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from devkit.embedded_mongo import CHANGE_STREAM_HISTORY

pytestmark = pytest.mark.integration


@pytest.fixture
async def server_client() -> AsyncIterator[AsyncMongoClient[Any]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "devkit.embedded_mongo", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        ready = process.stdout.readline().split()
        assert ready and ready[0] == "READY", ready
        mongo: AsyncMongoClient[Any] = AsyncMongoClient(ready[1])
        try:
            yield mongo
        finally:
            await mongo.close()
    finally:
        process.terminate()
        process.wait(timeout=10)


async def test_the_change_history_stays_short(server_client: AsyncMongoClient[Any]) -> None:
    db = server_client["history"]
    writes = 3 * CHANGE_STREAM_HISTORY
    for i in range(writes // 2):
        async with server_client.start_session() as session:
            async with await session.start_transaction():
                await db.rows.insert_one({"_id": f"r{i}", "pad": "x" * 200}, session=session)
                await db.inbox.insert_one({"_id": f"i{i}"}, session=session)
    status = await server_client.admin.command("serverStatus")
    history = status["mongoeco"]["changeStreams"]
    assert history["maxRetainedEvents"] == CHANGE_STREAM_HISTORY
    assert 0 < history["retainedEvents"] <= CHANGE_STREAM_HISTORY
    assert await db.rows.count_documents({}) == writes // 2  # the data itself is all there
