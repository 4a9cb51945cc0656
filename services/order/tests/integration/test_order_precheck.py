"""Precheck against the replica in Mongo, falling back to the user service when it lags."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from order_service import replicas
from order_service.domain import CustomerProfile, LineAvailability
from order_service.precheck import precheck
from pymongo import AsyncMongoClient

from contracts.types import Address, PaymentMethodSummary
from contracts.user import UserProfileUpdated

pytestmark = pytest.mark.integration

FRESH = CustomerProfile(
    user_id="u1",
    is_profile_complete=True,
    address_ids=("a9",),
    default_address_id="a9",
    payment_method_ids=("pm9",),
)


class FakeUsers:
    """The user service as a test double: answers FRESH and counts the calls."""

    def __init__(self, answer: CustomerProfile | None = FRESH) -> None:
        self.answer = answer
        self.calls = 0
        self.prompted = False

    async def profile(self, user_id: str, authorization: str | None) -> CustomerProfile | None:
        self.calls += 1
        return self.answer

    async def mark_prompted(self, user_id: str, authorization: str | None) -> None:
        self.prompted = True


class FakeStock:
    async def availability(self, items: Sequence[tuple[str, int]]) -> list[LineAvailability]:
        return [LineAvailability(p, q, q, "available") for p, q in items]


@pytest.fixture
async def db(mongo_client: AsyncMongoClient[Any], db_name: str) -> Any:
    yield mongo_client[db_name]
    await mongo_client.drop_database(db_name)


async def store_profile(db: Any, *, complete: bool) -> None:
    event = UserProfileUpdated(
        user_id="u1",
        username="ann",
        email="a@x.io",
        is_profile_complete=complete,
        addresses=(Address(address_id="a1", line1="1", city="c", zip="z", country="FR"),)
        if complete
        else (),
        default_address_id="a1" if complete else None,
        payment_methods=(PaymentMethodSummary(payment_method_id="pm1", type="card"),),
    )
    await replicas.user_profile_updated(db, event, datetime.now(UTC), None)


async def test_a_complete_replica_answers_without_asking_the_user_service(db: Any) -> None:
    await store_profile(db, complete=True)
    users = FakeUsers()
    result = await precheck(db, "u1", [("p1", 1)], users=users, stock=FakeStock())
    assert result.ready and result.default_address_id == "a1" and users.calls == 0


async def test_a_stale_incomplete_replica_asks_the_user_service(db: Any) -> None:
    await store_profile(db, complete=False)
    users = FakeUsers()
    result = await precheck(
        db, "u1", [("p1", 1)], users=users, stock=FakeStock(), authorization="B"
    )
    assert result.ready and result.default_address_id == "a9" and users.calls == 1


async def test_a_replica_miss_asks_the_user_service(db: Any) -> None:
    users = FakeUsers()
    result = await precheck(db, "u1", [("p1", 1)], users=users, stock=FakeStock())
    assert result.profile_complete and users.calls == 1


async def test_when_nobody_knows_the_profile_is_incomplete(db: Any) -> None:
    await store_profile(db, complete=False)
    result = await precheck(db, "u1", [("p1", 1)], users=FakeUsers(None), stock=FakeStock())
    assert not result.ready and result.missing == ["address"]
