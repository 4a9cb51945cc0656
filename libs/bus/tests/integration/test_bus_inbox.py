"""The inbox forgets an event only once no copy of it can come back: its rows outlive a replay
from the outbox (sent rows kept SENT_RETENTION) of a message that then waits out the DLQ."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from bus import BusConfig, BusConnection, ServiceBus
from bus.outbox import SENT_RETENTION

pytestmark = pytest.mark.integration

DAY = 24 * 3600


async def ttl_seconds(db: AsyncDatabase[Any], collection: str) -> dict[str, int]:
    """expireAfterSeconds of each TTL index of the collection, by field."""
    info = await db[collection].index_information()
    return {
        spec["key"][0][0]: spec["expireAfterSeconds"]
        for spec in info.values()
        if "expireAfterSeconds" in spec
    }


async def start_and_stop(
    config: BusConfig,
    mongo_client: AsyncMongoClient[Any],
    db: AsyncDatabase[Any],
    connection: BusConnection,
) -> None:
    bus = ServiceBus(config, {}, mongo_client, db, connection=connection)
    await bus.start()
    await bus.stop()


async def test_inbox_rows_expire_after_outbox_retention_plus_dlq_residency(
    make_config: Callable[..., BusConfig],
    mongo_client: AsyncMongoClient[Any],
    db: AsyncDatabase[Any],
    connection: BusConnection,
) -> None:
    config = make_config()
    await start_and_stop(config, mongo_client, db, connection)
    outbox_ttl = (await ttl_seconds(db, "outbox"))["sent_at"]
    assert outbox_ttl == SENT_RETENTION.total_seconds() == 7 * DAY
    inbox_ttl = await ttl_seconds(db, "inbox")
    # 7 days of outbox, 14 of DLQ residency (the default), a day of margin.
    assert inbox_ttl == {"processed_at": 22 * DAY}
    assert inbox_ttl["processed_at"] > outbox_ttl + config.dlq_residency_days * DAY

    # A longer residency on the next start moves the index along instead of failing the start.
    await start_and_stop(
        make_config(service=config.service, dlq_residency_days=30), mongo_client, db, connection
    )
    assert await ttl_seconds(db, "inbox") == {"processed_at": (7 + 30 + 1) * DAY}
