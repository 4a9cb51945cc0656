"""The user service's commands and its handler, on the embedded store with an in-memory bus.

No broker and no HTTP: `bootstrap(settings, mongo=…, bus=InMemoryBus())` wires the service, the
commands write through its unit of work, and what they commit is "published" to the bus, where
the test reads the events a user (or another service) would notice.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from user_service import commands
from user_service.bootstrap import bootstrap
from user_service.commands import Caller
from user_service.deps import Deps
from user_service.settings import UserSettings
from user_service.store import INDEXES

from bus.fake import InMemoryBus
from contracts import Actor, Envelope
from contracts.order import OrderConfirmed
from contracts.types import PricedLine
from contracts.user import UserLoggedIn, UserProfileUpdated, UserRegistered, UserRoleChanged
from kit.auth.signing import SigningKey
from kit.errors import Problem
from kit.mongo import ensure_indexes

pytestmark = pytest.mark.integration

NOW = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
PASSWORD = "correct horse battery staple"
BROWSER = Caller(actor=Actor(ip="203.0.113.7"), user_agent="Mozilla/5.0 (X11; Linux) Firefox/125")
ADDRESS = {
    "label": "Home",
    "line1": "1 Main St",
    "line2": None,
    "city": "Springfield",
    "state": "IL",
    "zip": "62701",
    "country": "US",
    "is_default": True,
}


class Clock:
    """A clock the test moves."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def settings(db_name: str) -> UserSettings:
    # Cheap hashing: allowed with env=test only.
    return UserSettings(
        env="test",
        mongo_db=db_name,
        argon2_time_cost=1,
        argon2_memory_kib=1024,
        argon2_parallelism=1,
    )


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
async def deps(
    mongo_client: AsyncMongoClient[Any], db_name: str, clock: Clock
) -> AsyncIterator[Deps]:
    wired = bootstrap(
        settings(db_name),
        mongo=mongo_client,
        bus=InMemoryBus(),
        clock=clock,
        signing_key=SigningKey.generate(),
    )
    await ensure_indexes(wired.db, INDEXES)  # as the lifespan does: unique emails, usernames
    yield wired
    await mongo_client.drop_database(db_name)


def bus_of(deps: Deps) -> InMemoryBus:
    assert isinstance(deps.bus, InMemoryBus)
    return deps.bus


async def sign_up(deps: Deps, username: str = "ada") -> dict[str, Any]:
    user, _ = await commands.register(
        deps,
        username=username,
        email=f"{username}@example.com",
        password=PASSWORD,
        phone=None,
        device_info=None,
        region="eu-west",
        caller=BROWSER,
    )
    return user


async def test_register_stores_a_customer_signs_it_in_and_emits_user_registered(
    deps: Deps,
) -> None:
    user, tokens = await commands.register(
        deps,
        username="Ada",
        email="  Ada@Example.COM ",
        password=PASSWORD,
        phone="+44 20 7946 0000",
        device_info=None,
        region="eu-west",
        caller=BROWSER,
    )

    assert set(tokens) == {"accessToken", "refreshToken"}
    stored = await deps.store.get(user["_id"])
    assert stored is not None
    assert (stored["role"], stored["email"], stored["is_profile_complete"]) == (
        "Customer",
        "ada@example.com",
        False,
    )
    assert stored["created_at"] == NOW  # the deps' clock, not the wall clock
    [registered] = bus_of(deps).of_type(UserRegistered)
    assert registered.data == UserRegistered(
        user_id=user["_id"],
        username="Ada",
        email="ada@example.com",
        phone="+44 20 7946 0000",
        role="Customer",
        region="eu-west",
        device=registered.data.device,
    )
    assert registered.actor.user_id == user["_id"]  # a self sign-up: the new user acted


async def test_a_taken_email_is_a_409_and_emits_nothing(deps: Deps) -> None:
    await sign_up(deps, "ada")
    with pytest.raises(Problem) as refused:
        await commands.register(
            deps,
            username="other",
            email="ADA@example.com",
            password=PASSWORD,
            phone=None,
            device_info=None,
            region=None,
            caller=BROWSER,
        )
    assert (refused.value.status, refused.value.code) == (409, "EMAIL_TAKEN")
    assert len(bus_of(deps).of_type(UserRegistered)) == 1


async def test_login_with_the_right_password_emits_user_logged_in_and_a_wrong_one_nothing(
    deps: Deps, clock: Clock
) -> None:
    user = await sign_up(deps)
    with pytest.raises(Problem) as refused:
        await commands.login(
            deps, identifier="ada", password="wrong password", device_info=None, caller=BROWSER
        )
    assert (refused.value.status, refused.value.code) == (401, "INVALID_CREDENTIALS")
    assert bus_of(deps).of_type(UserLoggedIn) == []

    clock.at = NOW + timedelta(hours=1)
    current, tokens = await commands.login(
        deps, identifier="ADA@example.com", password=PASSWORD, device_info=None, caller=BROWSER
    )
    assert current["_id"] == user["_id"] and tokens["accessToken"]
    assert current["last_active_at"] == clock.at
    [logged_in] = bus_of(deps).of_type(UserLoggedIn)
    assert logged_in.data.user_id == user["_id"]
    assert logged_in.data.ip == "203.0.113.7"
    assert logged_in.data.is_profile_complete is False


async def test_adding_an_address_and_a_card_completes_the_profile_and_emits_it(
    deps: Deps,
) -> None:
    user = await sign_up(deps)
    updated = await commands.add_details(
        deps,
        user["_id"],
        addresses=[ADDRESS],
        preferences=None,
        payment_methods=[{"type": "card", "token": "pm_card_ok", "is_default": True}],
        phone=None,
        caller=BROWSER,
    )

    assert updated["is_profile_complete"] is True
    [profile] = bus_of(deps).of_type(UserProfileUpdated)
    data = profile.data
    assert data.is_profile_complete is True
    assert set(data.changed_fields) == {"addresses", "paymentMethods", "isProfileComplete"}
    assert data.default_address_id == updated["addresses"][0]["address_id"]
    [card] = data.payment_methods
    assert (card.brand, card.last4) == ("visa", "4242")
    assert "pm_card_ok" not in profile.model_dump_json()  # the provider token never leaves


async def test_an_invalid_payment_token_changes_nothing(deps: Deps) -> None:
    user = await sign_up(deps)
    with pytest.raises(Problem) as refused:
        await commands.add_details(
            deps,
            user["_id"],
            addresses=None,
            preferences=None,
            payment_methods=[{"type": "card", "token": "4242424242424242"}],
            phone=None,
            caller=BROWSER,
        )
    assert (refused.value.status, refused.value.code) == (422, "INVALID_PAYMENT_TOKEN")
    assert bus_of(deps).of_type(UserProfileUpdated) == []
    stored = await deps.store.get(user["_id"])
    assert stored is not None and stored["payment_methods"] == []


async def test_a_role_change_emits_it_and_revokes_the_old_tokens(deps: Deps) -> None:
    user = await sign_up(deps)
    admin = Caller(actor=Actor(user_id="admin-1", role="Admin"))

    updated = await commands.admin_update(deps, user["_id"], {"role": "Manager"}, admin)

    assert updated["role"] == "Manager"
    assert updated["token_version"] == 1  # access tokens of the Customer role are refused
    [changed] = bus_of(deps).of_type(UserRoleChanged)
    assert changed.data == UserRoleChanged(
        user_id=user["_id"], role="Manager", previous_role="Customer"
    )
    assert changed.actor.user_id == "admin-1"
    [profile] = bus_of(deps).of_type(UserProfileUpdated)
    assert profile.data.changed_fields == ("role",)

    # The same role again: no role change to tell anyone about.
    await commands.admin_update(deps, user["_id"], {"role": "Manager"}, admin)
    assert len(bus_of(deps).of_type(UserRoleChanged)) == 1


def confirmed(user_id: str, order_id: str = "o-1") -> Envelope[OrderConfirmed]:
    return Envelope.wrap(
        OrderConfirmed(
            order_id=order_id,
            user_id=user_id,
            items=(PricedLine(product_id="p-1", quantity=1, price_cents=500),),
            total_cents=500,
            payment_method_id="pm-7",
        ),
        correlation_id=order_id,
    )


async def test_a_confirmed_order_is_counted_once_however_often_it_is_delivered(
    deps: Deps, mongo_client: AsyncMongoClient[Any], db_name: str
) -> None:
    user = await sign_up(deps)
    event = confirmed(user["_id"])
    bus = bus_of(deps)
    await bus.publish(event)
    await bus.deliver()

    counted = await deps.store.get(user["_id"])
    assert counted is not None
    assert (counted["order_count"], counted["preferred_payment_method"]) == (1, "pm-7")
    # Active when it ordered (Mongo keeps milliseconds).
    assert abs(counted["last_active_at"] - event.occurred_at) < timedelta(milliseconds=1)

    # A redelivery to a fresh process (no memory of the first): the user document knows it.
    again = bootstrap(
        settings(db_name), mongo=mongo_client, bus=InMemoryBus(), signing_key=SigningKey.generate()
    )
    await bus_of(again).publish(event)
    await bus_of(again).deliver()
    stored = await deps.store.get(user["_id"])
    assert stored is not None and stored["order_count"] == 1

    # Another order does count.
    await bus_of(again).publish(confirmed(user["_id"], "o-2"))
    await bus_of(again).deliver()
    stored = await deps.store.get(user["_id"])
    assert stored is not None and stored["order_count"] == 2


async def test_a_confirmed_order_of_an_unknown_user_changes_nothing(deps: Deps) -> None:
    bus = bus_of(deps)
    await bus.publish(confirmed("nobody"))
    await bus.deliver()
    assert await deps.db["users"].count_documents({}) == 0
