"""Replicas of users, products and promotions through the real broker: newest data wins."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from order_service import replicas

from contracts import Envelope, Event
from contracts.analytics import PromotionGranted
from contracts.inventory import ProductCreated, ProductDeleted, ProductUpdated
from contracts.types import Address, PaymentMethodSummary, Preferences
from contracts.user import UserDeleted, UserProfileUpdated, UserRegistered, UserRoleChanged
from devkit.bus_testing import eventually

from .conftest import RunningOrder

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)


def wrap(event: Event, *, seconds_ago: float = 0) -> Envelope[Any]:
    envelope = Envelope.wrap(event, correlation_id="test")
    return envelope.model_copy(update={"occurred_at": NOW - timedelta(seconds=seconds_ago)})


def profile(user_id: str, *, complete: bool, city: str = "Paris") -> UserProfileUpdated:
    return UserProfileUpdated(
        user_id=user_id,
        username="ann",
        email="ann@example.com",
        is_profile_complete=complete,
        addresses=(Address(address_id="a1", line1="1 rue", city=city, zip="75001", country="FR"),),
        default_address_id="a1",
        payment_methods=(PaymentMethodSummary(payment_method_id="pm1", type="card", last4="4242"),),
        preferences=Preferences(partial_fulfillment="accept"),
    )


async def user(svc: RunningOrder, user_id: str) -> dict[str, Any]:
    doc = await replicas.get_user(svc.deps.db, user_id)
    assert doc is not None
    return doc


async def test_user_replica_from_registration_profile_role_and_deletion(
    order_service: RunningOrder,
) -> None:
    uid = f"u-{secrets.token_hex(3)}"
    registered = wrap(UserRegistered(user_id=uid, username="ann", email="a@x.io"), seconds_ago=4)
    updated = wrap(profile(uid, complete=True), seconds_ago=3)
    role = wrap(UserRoleChanged(user_id=uid, role="Manager"), seconds_ago=2)
    await order_service.publish(registered, updated, role)
    for envelope in (registered, updated, role):
        await order_service.handled(envelope)
    doc = await user(order_service, uid)
    assert doc["is_profile_complete"] is True and doc["role"] == "Manager"
    assert doc["default_address_id"] == "a1"
    assert doc["addresses"][0]["city"] == "Paris"
    assert doc["payment_methods"][0]["payment_method_id"] == "pm1"
    assert doc["preferences"]["partial_fulfillment"] == "accept"
    assert doc["deleted"] is False

    deleted = wrap(UserDeleted(user_id=uid, role="Manager"), seconds_ago=1)
    await order_service.publish(deleted)
    await order_service.handled(deleted)
    assert (await user(order_service, uid))["deleted"] is True


async def test_an_older_profile_arriving_late_changes_nothing(order_service: RunningOrder) -> None:
    uid = f"u-{secrets.token_hex(3)}"
    newer = wrap(profile(uid, complete=True, city="Lyon"), seconds_ago=1)
    older = wrap(profile(uid, complete=False, city="Paris"), seconds_ago=5)
    await order_service.publish(newer)
    await order_service.handled(newer)
    await order_service.publish(older)
    await order_service.handled(older)
    doc = await user(order_service, uid)
    assert doc["is_profile_complete"] is True and doc["addresses"][0]["city"] == "Lyon"


async def test_a_late_profile_still_fills_what_a_newer_role_change_did_not_carry(
    order_service: RunningOrder,
) -> None:
    uid = f"u-{secrets.token_hex(3)}"
    role = wrap(UserRoleChanged(user_id=uid, role="Admin"), seconds_ago=1)
    updated = wrap(profile(uid, complete=True), seconds_ago=5)
    await order_service.publish(role)
    await order_service.handled(role)
    await order_service.publish(updated)
    await order_service.handled(updated)
    doc = await user(order_service, uid)
    assert doc["role"] == "Admin" and doc["is_profile_complete"] is True


async def test_a_duplicate_delivery_changes_nothing(order_service: RunningOrder) -> None:
    pid = f"p-{secrets.token_hex(3)}"
    created = wrap(ProductCreated(product_id=pid, name="Lamp", category="home", price_cents=1500))
    await order_service.publish(created)
    await order_service.handled(created)
    before = await order_service.deps.db[replicas.PRODUCTS].find_one({"_id": pid})
    # The same envelope again, and the same facts under a new id with the same time: both no-ops.
    again = created.model_copy(update={"id": f"{created.id[:-4]}beef"})
    await order_service.publish(created, again)
    await order_service.handled(again)
    after = await order_service.deps.db[replicas.PRODUCTS].find_one({"_id": pid})
    assert after == before
    assert await order_service.deps.db["inbox"].count_documents({"event_id": created.id}) == 1


async def test_product_replica_keeps_the_newest_price_and_the_deletion(
    order_service: RunningOrder,
) -> None:
    pid = f"p-{secrets.token_hex(3)}"
    facts: dict[str, Any] = {"product_id": pid, "name": "Lamp", "category": "home"}
    created = wrap(ProductCreated(**facts, price_cents=1500), seconds_ago=6)
    newer = wrap(ProductUpdated(**facts, price_cents=1200), seconds_ago=2)
    older = wrap(ProductUpdated(**facts, price_cents=9900), seconds_ago=4)
    await order_service.publish(created, newer)
    await order_service.handled(created)
    await order_service.handled(newer)
    await order_service.publish(older)
    await order_service.handled(older)
    found = await replicas.catalogue(order_service.deps.db, [pid, "missing"])
    assert list(found) == [pid]
    assert found[pid].price_cents == 1200 and not found[pid].deleted

    deleted = wrap(ProductDeleted(**facts, price_cents=1200), seconds_ago=1)
    await order_service.publish(deleted)
    await order_service.handled(deleted)
    assert (await replicas.catalogue(order_service.deps.db, [pid]))[pid].deleted


async def test_a_deletion_that_overtakes_the_creation_stays(order_service: RunningOrder) -> None:
    pid = f"p-{secrets.token_hex(3)}"
    facts: dict[str, Any] = {"product_id": pid, "name": "Lamp", "category": "home"}
    deleted = wrap(ProductDeleted(**facts, price_cents=1500), seconds_ago=1)
    created = wrap(ProductCreated(**facts, price_cents=1500), seconds_ago=5)
    await order_service.publish(deleted)
    await order_service.handled(deleted)
    await order_service.publish(created)
    await order_service.handled(created)
    found = await replicas.catalogue(order_service.deps.db, [pid])
    assert found[pid].deleted and found[pid].name == "Lamp"


async def test_promotion_granted_then_redeemed_once(order_service: RunningOrder) -> None:
    uid = f"u-{secrets.token_hex(3)}"
    expires = NOW + timedelta(days=7)
    granted = wrap(
        PromotionGranted(user_id=uid, code="BACK10", percent_off=10, expires_at=expires, reason="x")
    )
    await order_service.publish(granted)
    await order_service.handled(granted)
    db = order_service.deps.db
    promo = await replicas.get_promotion(db, uid, "BACK10")
    assert promo is not None and promo.percent_off == 10 and not promo.redeemed
    assert promo.expires_at == expires
    assert await replicas.get_promotion(db, "someone-else", "BACK10") is None

    assert await replicas.mark_redeemed(db, uid, "BACK10", None)
    assert not await replicas.mark_redeemed(db, uid, "BACK10", None)
    # A redelivered grant does not hand the code back.
    regrant = granted.model_copy(update={"id": f"{granted.id[:-4]}cafe"})
    await order_service.publish(regrant)
    await order_service.handled(regrant)

    async def still_redeemed() -> bool:
        found = await replicas.get_promotion(db, uid, "BACK10")
        return found is not None and found.redeemed

    await eventually(still_redeemed, timeout=2)
