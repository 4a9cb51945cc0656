"""bench.counting_mongo: the bench's embedded server counts every command it receives by the
client's application name (= the service), failed ones too, and the bench reads the counts off
`serverStatus` (`bench.probes.mongo_counters`); a server that does not count says so."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.errors import DuplicateKeyError

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from bench.probes import mongo_counters  # noqa: E402
from bench.system import MONGO_MODULE  # noqa: E402

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def counting_url() -> Iterator[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", MONGO_MODULE, "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    try:
        assert line.startswith("READY "), line
        yield line.removeprefix("READY ")
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
async def clients(counting_url: str) -> AsyncIterator[dict[str, AsyncMongoClient[Any]]]:
    made: dict[str, AsyncMongoClient[Any]] = {
        "order": AsyncMongoClient(counting_url, appname="order"),
        "payment": AsyncMongoClient(counting_url, appname="payment"),
        "bench": AsyncMongoClient(counting_url),  # unnamed, as the bench's own probes
    }
    try:
        yield made
    finally:
        for client in made.values():
            await client.close()


async def test_each_command_counts_for_the_service_that_sent_it(
    clients: dict[str, AsyncMongoClient[Any]],
) -> None:
    probe = {"": clients["bench"]}
    before = await mongo_counters(probe)
    assert before.counting

    order = clients["order"]["shop_order"]
    await order.rows.insert_one({"_id": "a"})
    with pytest.raises(DuplicateKeyError):
        await order.rows.insert_one({"_id": "a"})  # a failed command is a round trip too
    await order.bulk.insert_many([{"i": i} for i in range(120)])  # one command, 120 documents
    assert len([row async for row in order.bulk.find({}).batch_size(50)]) == 120
    async with clients["order"].start_session() as session:
        async with await session.start_transaction():
            await order.rows.update_one({"_id": "a"}, {"$set": {"x": 1}}, session=session)
    payment = clients["payment"]["shop_payment"]
    await payment.attempts.find_one_and_update({"_id": "p"}, {"$set": {"n": 1}}, upsert=True)

    after = await mongo_counters(probe)
    moved = {
        key: n - before.commands.get(key, 0)
        for key, n in after.commands.items()
        if n != before.commands.get(key, 0)
    }
    order_commands = {command: n for (app, command), n in moved.items() if app == "order"}
    # Handshakes and monitoring (hello / isMaster) depend on the driver's timing; the rest is
    # exactly what was sent: 2 + 1 inserts, a find and its 2 getMores, the update and the commit.
    assert {c: n for c, n in order_commands.items() if c not in ("hello", "ismaster")} == {
        "insert": 3,
        "find": 1,
        "getMore": 2,
        "update": 1,
        "commitTransaction": 1,
    }
    payment_commands = {command: n for (app, command), n in moved.items() if app == "payment"}
    assert payment_commands.get("findAndModify") == 1
    assert moved.get(("-", "serverStatus")) == 1  # the probe's own read, under no service
    # The opcounters are by server and count documents attempted: 122 inserts (the refused
    # duplicate too), 2 updates (the upsert too).
    assert after.writes[""] - before.writes[""] == 124


async def test_a_server_that_does_not_count_says_so(mongo_url: str) -> None:
    client: AsyncMongoClient[Any] = AsyncMongoClient(mongo_url)
    try:
        counters = await mongo_counters({"": client})
    finally:
        await client.close()
    assert not counters.counting
    assert counters.commands == {}
