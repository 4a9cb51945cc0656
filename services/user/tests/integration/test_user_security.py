"""Brute force, password hashing, admin CRUD and roles, bootstrap accounts and OrderConfirmed,
against the real broker and Mongo."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from argon2 import PasswordHasher, Type

from bus import AmqpPublisher
from bus.runtime import bus_config
from contracts import Envelope
from contracts.order import OrderConfirmed
from contracts.types import PricedLine
from devkit.bus_testing import eventually
from devkit.user_testing import RunningUser

pytestmark = pytest.mark.integration

API = "/api/v1/users"
ADMIN = {"identifier": "root@example.com", "password": "admin-password-1"}


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def register(user: RunningUser, name: str) -> dict[str, Any]:
    response = await user.client.post(
        f"{API}/register",
        json={"username": name, "email": f"{name}@example.com", "password": "long-enough-pw"},
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def login(user: RunningUser, identifier: str, password: str) -> dict[str, Any]:
    response = await user.client.post(
        f"{API}/login", json={"identifier": identifier, "password": password}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_sixth_wrong_password_is_429_and_the_lockout_ends(user: RunningUser) -> None:
    await register(user, "ivy")
    wrong = {"identifier": "ivy", "password": "not-the-password"}
    statuses = [(await user.client.post(f"{API}/login", json=wrong)).status_code for _ in range(5)]
    assert statuses == [401] * 5
    sixth = await user.client.post(f"{API}/login", json=wrong)
    assert sixth.status_code == 429 and sixth.json()["code"] == "TOO_MANY_ATTEMPTS"
    assert 1 <= int(sixth.headers["retry-after"]) <= 2
    # while locked, even the right password is refused
    right = {"identifier": "ivy@example.com", "password": "long-enough-pw"}
    assert (await user.client.post(f"{API}/login", json=right)).status_code == 429
    await asyncio.sleep(2.1)  # the test settings' lockout window
    assert (await user.client.post(f"{API}/login", json=right)).status_code == 200


async def test_unknown_user_wrong_password_and_deleted_user_answer_the_same(
    user: RunningUser,
) -> None:
    await register(user, "jay")
    unknown = await user.client.post(
        f"{API}/login", json={"identifier": "nobody", "password": "whatever-pass"}
    )
    wrong = await user.client.post(
        f"{API}/login", json={"identifier": "jay", "password": "whatever-pass"}
    )
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json() == wrong.json()
    assert unknown.json()["code"] == "INVALID_CREDENTIALS"


async def test_login_rehashes_a_password_made_with_older_parameters(user: RunningUser) -> None:
    created = await register(user, "kim")
    stored = await user.deps.db["users"].find_one({"_id": created["userId"]})
    assert stored is not None and "t=1" in stored["password_hash"]
    user.deps.passwords.hasher = PasswordHasher(
        time_cost=2, memory_cost=2048, parallelism=1, type=Type.ID
    )
    await login(user, "kim", "long-enough-pw")
    again = await user.deps.db["users"].find_one({"_id": created["userId"]})
    assert again is not None and "m=2048,t=2,p=1" in again["password_hash"]
    await login(user, "kim", "long-enough-pw")  # the new hash verifies


async def test_admin_crud_roles_and_soft_delete(user: RunningUser) -> None:
    admin = await login(user, ADMIN["identifier"], ADMIN["password"])
    assert admin["role"] == "Admin"
    auth = bearer(admin["accessToken"])

    created = await user.client.post(
        API,
        json={
            "username": "max",
            "email": "max@example.com",
            "password": "long-enough-pw",
            "role": "Manager",
        },
        headers=auth,
    )
    assert created.status_code == 201, created.text
    manager_id = created.json()["userId"]
    assert created.json()["role"] == "Manager"

    customer = await register(user, "ned")
    listed = await user.client.get(API, params={"role": "Manager"}, headers=auth)
    assert [u["userId"] for u in listed.json()["items"]] == [manager_id]
    paged = await user.client.get(API, params={"limit": 1}, headers=auth)
    assert len(paged.json()["items"]) == 1 and paged.json()["nextCursor"]
    rest = await user.client.get(
        API, params={"limit": 100, "cursor": paged.json()["nextCursor"]}, headers=auth
    )
    assert len(rest.json()["items"]) == 2
    found = await user.client.get(API, params={"q": "ne"}, headers=auth)
    assert [u["username"] for u in found.json()["items"]] == ["ned"]

    detail = await user.client.get(f"{API}/{customer['userId']}", headers=auth)
    assert detail.json()["registeredIp"] == "127.0.0.1" and "createdAt" in detail.json()

    promoted = await user.client.patch(
        f"{API}/{customer['userId']}", json={"role": "Manager"}, headers=auth
    )
    assert promoted.status_code == 200 and promoted.json()["role"] == "Manager"
    # the customer's old token carries the old role: no longer accepted here
    stale = await user.client.get(f"{API}/me", headers=bearer(customer["accessToken"]))
    assert stale.status_code == 401

    deleted = await user.client.delete(f"{API}/{manager_id}", headers=auth)
    assert deleted.status_code == 204
    assert (await user.client.get(f"{API}/{manager_id}", headers=auth)).status_code == 404
    gone = await user.client.post(
        f"{API}/login", json={"identifier": "max", "password": "long-enough-pw"}
    )
    assert gone.status_code == 401 and gone.json()["code"] == "INVALID_CREDENTIALS"
    # the email is free again
    check = await user.client.post(f"{API}/check", json={"identifier": "max@example.com"})
    assert check.json()["exists"] is False

    await eventually(lambda: bool(user.events("UserDeleted")), what="UserDeleted")
    await eventually(lambda: bool(user.events("UserRoleChanged")), what="UserRoleChanged")
    (role_changed,) = user.events("UserRoleChanged")
    assert role_changed["data"] == {
        "userId": customer["userId"],
        "role": "Manager",
        "previousRole": "Customer",
    }
    assert role_changed["actor"]["userId"] == admin["userId"]
    assert role_changed["actor"]["role"] == "Admin"
    (removed,) = user.events("UserDeleted")
    assert removed["data"] == {"userId": manager_id, "role": "Manager"}


async def test_admin_patch_with_explicit_nulls_is_422_and_changes_nothing(
    user: RunningUser,
) -> None:
    """Found by the security suite's schemathesis run: `"email": null` was a 500, and
    `"role": null` would have stored a user without a role."""
    admin = await login(user, ADMIN["identifier"], ADMIN["password"])
    auth = bearer(admin["accessToken"])
    customer = await register(user, "nul")
    for field in ("role", "email", "username", "disabled"):
        response = await user.client.patch(
            f"{API}/{customer['userId']}", json={field: None}, headers=auth
        )
        assert response.status_code == 422, (field, response.text)
        assert response.json()["code"] == "VALIDATION_ERROR"
    stored = await user.client.get(f"{API}/{customer['userId']}", headers=auth)
    assert stored.json()["role"] == "Customer" and stored.json()["email"] == "nul@example.com"
    cleared = await user.client.patch(
        f"{API}/{customer['userId']}", json={"phone": None}, headers=auth
    )
    assert cleared.status_code == 200, cleared.text


async def test_customers_get_403_on_admin_routes_and_404_on_other_users(
    user: RunningUser,
) -> None:
    one = await register(user, "ola")
    two = await register(user, "pat")
    auth = bearer(one["accessToken"])
    calls = [
        ("GET", API, None),
        (
            "POST",
            API,
            {"username": "q1q", "email": "q@example.com", "password": "x" * 12, "role": "Admin"},
        ),
        ("PATCH", f"{API}/{one['userId']}", {"role": "Admin"}),
        ("DELETE", f"{API}/{two['userId']}", None),
    ]
    for method, path, body in calls:
        response = await user.client.request(method, path, json=body, headers=auth)
        assert response.status_code == 403, (method, path)
        assert response.json()["code"] == "FORBIDDEN"
    other = await user.client.get(f"{API}/{two['userId']}", headers=auth)
    assert other.status_code == 404 and other.json()["code"] == "USER_NOT_FOUND"
    own = await user.client.get(f"{API}/{one['userId']}", headers=auth)
    assert own.status_code == 200 and "registeredIp" not in own.json()
    stored = await user.deps.db["users"].find_one({"_id": one["userId"]})
    assert stored is not None and stored["role"] == "Customer"


async def test_bootstrap_accounts_are_created_once(user: RunningUser) -> None:
    from user_service.commands import ensure_bootstrap_accounts

    user.deps.settings.manager_email = "boss@example.com"
    user.deps.settings.manager_password = "manager-password-1"
    await ensure_bootstrap_accounts(user.deps)
    await ensure_bootstrap_accounts(user.deps)
    users = user.deps.db["users"]
    assert await users.count_documents({"role": "Admin"}) == 1
    assert await users.count_documents({"role": "Manager", "email": "boss@example.com"}) == 1
    await login(user, "boss@example.com", "manager-password-1")


async def test_order_confirmed_twice_counts_once(user: RunningUser) -> None:
    created = await register(user, "quin")
    order = OrderConfirmed(
        order_id="o-1",
        user_id=created["userId"],
        items=(PricedLine(product_id="p-1", quantity=1, price_cents=500),),
        total_cents=500,
        payment_method_id="pm-id-1",
    )
    envelope = Envelope.wrap(order, correlation_id="o-1")
    publisher = AmqpPublisher(user.connection, bus_config(user.deps.settings))
    await publisher.publish(envelope)
    await publisher.publish(envelope)  # a redelivery: same envelope id

    async def counted() -> bool:
        doc = await user.deps.db["users"].find_one({"_id": created["userId"]})
        return doc is not None and doc["order_count"] >= 1

    await eventually(counted, what="orderCount")
    await asyncio.sleep(0.5)  # time for the duplicate to be delivered (and skipped)
    me = await user.client.get(f"{API}/me", headers=bearer(created["accessToken"]))
    flags = me.json()["flags"]
    assert flags["orderCount"] == 1
    assert flags["preferredPaymentMethod"] == "pm-id-1"
    await publisher.close()
