"""A leased sweeper against a real MongoDB-protocol server: one holder at a time, the lease
written once per half term rather than on every pass, taken over when it lapses or is given up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from kit.leases import LEASES, LeasedTask

pytestmark = pytest.mark.integration

LEASE = timedelta(seconds=30)
T0 = datetime(2026, 1, 1, 12, tzinfo=UTC)


class Sweeper(LeasedTask):
    """Counts its sweeps."""

    def __init__(self, db: AsyncDatabase[Any], holder: str) -> None:
        super().__init__(
            db,
            "test.sweeper",
            self.sweep,
            interval=1,
            lease_seconds=LEASE.total_seconds(),
            holder=holder,
        )
        self.sweeps = 0

    async def sweep(self, now: datetime) -> int:
        self.sweeps += 1
        return 1


async def stored_until(db: AsyncDatabase[Any]) -> datetime:
    doc = await db[LEASES].find_one({"_id": "test.sweeper"})
    assert doc is not None
    until: datetime = doc["until"]
    return until if until.tzinfo else until.replace(tzinfo=UTC)


async def test_the_holder_renews_only_once_half_the_term_is_gone(
    mongo_client: AsyncMongoClient[Any], db_name: str
) -> None:
    db = mongo_client[db_name]
    first, second = Sweeper(db, "a"), Sweeper(db, "b")
    passes = [T0 + timedelta(seconds=s) for s in range(0, 15)]  # a pass a second, half a term
    for now in passes:
        assert await first.run_once(now) == 1
        assert await second.run_once(now) == 0
    # Taken at T0 and not written again while more than half of it was left.
    assert await stored_until(db) == T0 + LEASE
    assert (first.sweeps, second.sweeps) == (len(passes), 0)

    renewal = T0 + LEASE / 2
    assert await first.run_once(renewal) == 1
    assert await stored_until(db) == renewal + LEASE
    # The other instance never gets a lease that is renewed in time.
    assert await second.run_once(T0 + LEASE + timedelta(seconds=5)) == 0
    await mongo_client.drop_database(db_name)


async def test_another_instance_takes_over_a_lapsed_or_given_up_lease(
    mongo_client: AsyncMongoClient[Any], db_name: str
) -> None:
    db = mongo_client[db_name]
    first, second = Sweeper(db, "a"), Sweeper(db, "b")
    assert await first.run_once(T0) == 1
    assert await second.run_once(T0 + timedelta(seconds=29)) == 0
    # The holder died (no renewal): its lease runs out and the other takes it.
    lapsed = T0 + LEASE + timedelta(seconds=1)
    assert await second.run_once(lapsed) == 1
    assert await stored_until(db) == lapsed + LEASE
    # The first instance, back from its stall, sweeps no more: the lease is another's now.
    assert await first.run_once(lapsed + timedelta(seconds=1)) == 0
    # Given up on stop: the other takes it at its next pass, not after the term.
    await second.stop()
    assert await first.run_once(lapsed + timedelta(seconds=2)) == 1
    await mongo_client.drop_database(db_name)
