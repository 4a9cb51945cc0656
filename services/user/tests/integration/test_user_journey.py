"""Step 1 and Step 2 of the seed against the real broker and Mongo: identify, register, enrich,
log in; duplicates, strict bodies, operator injection, raw card numbers, refresh tokens."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from bus import AmqpPublisher
from bus.runtime import bus_config
from contracts import Envelope
from contracts.order import OrderConfirmed
from devkit.bus_testing import eventually
from devkit.user_testing import RunningUser

pytestmark = pytest.mark.integration

API = "/api/v1/users"
UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
)
ADDRESS = {
    "label": "home",
    "line1": "1 Main St",
    "city": "Springfield",
    "state": "IL",
    "zip": "62701",
    "country": "US",
}


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def register(client: httpx.AsyncClient, name: str, **extra: Any) -> dict[str, Any]:
    response = await client.post(
        f"{API}/register",
        json={
            "username": name,
            "email": f"{name}@example.com",
            "password": "long-enough-pw",
            **extra,
        },
        headers={"user-agent": UA},
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_first_time_then_returning_path(user: RunningUser) -> None:
    client = user.client
    first = await client.post(f"{API}/check", json={"identifier": "Ann@Example.com"})
    assert first.json() == {"exists": False, "userId": None, "role": None}

    created = await register(client, "ann", phone="+15550100")
    assert created["status"] == "created" and created["role"] == "Customer"
    assert created["accessToken"] and created["refreshToken"]

    me = await client.get(f"{API}/me", headers=bearer(created["accessToken"]))
    assert me.status_code == 200
    profile = me.json()
    assert profile["flags"]["isProfileComplete"] is False
    assert profile["flags"]["profileCompletionPrompted"] is False
    assert profile["flags"]["orderCount"] == 0

    stored = await user.deps.db["users"].find_one({"_id": created["userId"]})
    assert stored is not None
    assert stored["password_hash"].startswith("$argon2id$")
    assert stored["device_info"]["browser"] == "Mobile Safari"
    assert stored["device_info"]["os"] == "iOS"
    assert stored["device_info"]["deviceType"] == "mobile"
    assert stored["registered_ip"] == "127.0.0.1" and stored["region"] == "local"

    details = await client.post(
        f"{API}/me/details",
        json={
            "addresses": [ADDRESS],
            "preferences": {"partialFulfillment": "accept", "notificationChannels": ["email"]},
            "paymentMethods": [{"type": "card", "token": "pm_card_ok"}],
        },
        headers=bearer(created["accessToken"]),
    )
    assert details.status_code == 200, details.text
    enriched = details.json()
    assert enriched["flags"]["isProfileComplete"] is True
    (address,) = enriched["addresses"]
    assert address["isDefault"] and address["addressId"]
    (method,) = enriched["paymentMethods"]
    assert method == {
        "paymentMethodId": method["paymentMethodId"],
        "type": "card",
        "brand": "visa",
        "last4": "4242",
        "isDefault": True,
    }
    assert "pm_card_ok" not in details.text
    assert enriched["preferences"]["partialFulfillment"] == "accept"

    # returning path
    again = await client.post(f"{API}/check", json={"identifier": "ANN"})
    assert again.json() == {"exists": True, "userId": created["userId"], "role": "Customer"}
    login = await client.post(
        f"{API}/login", json={"identifier": "ann@example.com", "password": "long-enough-pw"}
    )
    assert login.status_code == 200, login.text
    assert login.json()["flags"]["isProfileComplete"] is True
    assert set(login.json()["flags"]) == {
        "isProfileComplete",
        "profileCompletionPrompted",
        "lastActiveAt",
        "preferredPaymentMethod",
        "orderCount",
    }

    prompted = await client.post(
        f"{API}/me/profile-prompted", headers=bearer(login.json()["accessToken"])
    )
    assert prompted.json()["flags"]["profileCompletionPrompted"] is True

    await eventually(lambda: len(user.events("UserProfileUpdated")) >= 1, what="profile event")
    await eventually(lambda: len(user.events("UserLoggedIn")) >= 1, what="login event")
    registered = [
        e for e in user.events("UserRegistered") if e["data"]["userId"] == created["userId"]
    ]
    assert registered[0]["actor"]["userId"] == created["userId"]
    assert registered[0]["actor"]["region"] == "local"
    assert "Mobile Safari" in registered[0]["data"]["device"]
    updated = user.events("UserProfileUpdated")[-1]
    assert updated["data"]["isProfileComplete"] is True
    assert "pm_card_ok" not in json.dumps(updated) and "password" not in json.dumps(updated)
    # The login says how complete the profile was then (notify nudges on it).
    logged_in = user.events("UserLoggedIn")[-1]["data"]
    assert logged_in["isProfileComplete"] is login.json()["flags"]["isProfileComplete"]


async def test_ten_parallel_registrations_of_one_email_give_one_account(user: RunningUser) -> None:
    async def attempt(i: int) -> httpx.Response:
        return await user.client.post(
            f"{API}/register",
            json={
                "username": f"racer{i}",
                "email": "race@example.com",
                "password": "long-enough-pw",
            },
        )

    responses = await asyncio.gather(*(attempt(i) for i in range(10)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * 9
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"EMAIL_TAKEN"}
    assert await user.deps.db["users"].count_documents({"email": "race@example.com"}) == 1


async def test_username_is_unique_regardless_of_case_and_password_policy(
    user: RunningUser,
) -> None:
    await register(user.client, "bob")
    clash = await user.client.post(
        f"{API}/register",
        json={"username": "BOB", "email": "other@example.com", "password": "long-enough-pw"},
    )
    assert clash.status_code == 409 and clash.json()["code"] == "USERNAME_TAKEN"
    short = await user.client.post(
        f"{API}/register",
        json={"username": "carl", "email": "carl@example.com", "password": "short"},
    )
    assert short.status_code == 422 and short.json()["code"] == "WEAK_PASSWORD"
    same = await user.client.post(
        f"{API}/register",
        json={"username": "carl", "email": "carl@example.com", "password": "carl@example.com"},
    )
    assert same.status_code == 422 and same.json()["code"] == "WEAK_PASSWORD"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("check", {"identifier": {"$ne": ""}}),
        ("login", {"identifier": {"$gt": ""}, "password": {"$ne": ""}}),
        ("login", {"identifier": "dora", "password": {"$ne": "x"}}),
        ("register", {"username": "x1x", "email": {"$ne": 1}, "password": "long-enough-pw"}),
        ("register", {"username": ["a"], "email": "z@example.com", "password": "long-enough-pw"}),
    ],
)
async def test_operator_injection_is_a_422(
    user: RunningUser, path: str, body: dict[str, Any]
) -> None:
    response = await user.client.post(f"{API}/{path}", json=body)
    assert response.status_code == 422
    assert response.json()["code"] == "VALIDATION_ERROR"


async def test_details_cannot_set_role_counts_or_flags(user: RunningUser) -> None:
    created = await register(user.client, "eve")
    for field, value in [("role", "Admin"), ("orderCount", 99), ("isProfileComplete", True)]:
        response = await user.client.post(
            f"{API}/me/details",
            json={"phone": "+1555", field: value},
            headers=bearer(created["accessToken"]),
        )
        assert response.status_code == 422, field
        assert response.json()["code"] == "VALIDATION_ERROR"
    stored = await user.deps.db["users"].find_one({"_id": created["userId"]})
    assert stored is not None
    assert (stored["role"], stored["order_count"], stored["is_profile_complete"]) == (
        "Customer",
        0,
        False,
    )
    assert stored["phone"] is None


async def test_a_raw_card_number_is_refused_and_not_stored(user: RunningUser) -> None:
    created = await register(user.client, "fay")
    response = await user.client.post(
        f"{API}/me/details",
        json={"paymentMethods": [{"type": "card", "token": "4111 1111 1111 1111"}]},
        headers=bearer(created["accessToken"]),
    )
    assert response.status_code == 422
    assert response.json()["code"] == "RAW_CARD_NUMBER_REJECTED"
    assert "4111" not in response.text
    hidden = await user.client.post(
        f"{API}/me/details",
        json={"addresses": [{**ADDRESS, "line2": "card 4242424242424242"}]},
        headers=bearer(created["accessToken"]),
    )
    assert hidden.json()["code"] == "RAW_CARD_NUMBER_REJECTED"
    stored = await user.deps.db["users"].find_one({"_id": created["userId"]})
    assert stored is not None and stored["payment_methods"] == [] and stored["addresses"] == []


async def test_addresses_keep_exactly_one_default(user: RunningUser) -> None:
    created = await register(user.client, "gil")
    auth = bearer(created["accessToken"])
    second = {**ADDRESS, "label": "work", "line1": "2 Side St"}
    body = (
        await user.client.post(
            f"{API}/me/details", json={"addresses": [ADDRESS, second]}, headers=auth
        )
    ).json()
    home, work = body["addresses"]
    assert (home["isDefault"], work["isDefault"]) == (True, False)
    assert body["flags"]["isProfileComplete"] is False  # no payment method yet

    moved = await user.client.post(f"{API}/me/addresses/{work['addressId']}/default", headers=auth)
    assert [a["isDefault"] for a in moved.json()["addresses"]] == [False, True]
    edited = await user.client.put(
        f"{API}/me/addresses/{home['addressId']}",
        json={**ADDRESS, "city": "Shelbyville"},
        headers=auth,
    )
    assert edited.json()["addresses"][0]["city"] == "Shelbyville"
    removed = await user.client.delete(f"{API}/me/addresses/{work['addressId']}", headers=auth)
    (left,) = removed.json()["addresses"]
    assert left["addressId"] == home["addressId"] and left["isDefault"]
    missing = await user.client.delete(f"{API}/me/addresses/nope", headers=auth)
    assert missing.status_code == 404 and missing.json()["code"] == "ADDRESS_NOT_FOUND"


async def test_refresh_rotates_and_a_reused_token_revokes_the_family(user: RunningUser) -> None:
    created = await register(user.client, "hal")
    first = created["refreshToken"]
    rotated = await user.client.post(f"{API}/token/refresh", json={"refreshToken": first})
    assert rotated.status_code == 200
    second = rotated.json()["refreshToken"]
    assert second != first and rotated.json()["accessToken"]

    reused = await user.client.post(f"{API}/token/refresh", json={"refreshToken": first})
    assert reused.status_code == 401 and reused.json()["code"] == "INVALID_REFRESH_TOKEN"
    # the thief's reuse also kills the legitimate holder's newer token
    after = await user.client.post(f"{API}/token/refresh", json={"refreshToken": second})
    assert after.status_code == 401
    stored = await user.deps.db["refresh_tokens"].find_one({})
    assert stored is not None and first not in json.dumps(stored, default=str)


async def test_per_ip_rate_limit(user: RunningUser) -> None:
    user.deps.settings.ip_rate_limit = 3
    statuses = [
        (await user.client.post(f"{API}/check", json={"identifier": "x@example.com"})).status_code
        for _ in range(4)
    ]
    assert statuses == [200, 200, 200, 429]
    limited = await user.client.post(f"{API}/check", json={"identifier": "x@example.com"})
    assert limited.json()["code"] == "RATE_LIMITED" and int(limited.headers["retry-after"]) >= 1


async def test_a_deeply_nested_body_is_a_422(user: RunningUser) -> None:
    deep = "[" * 5000 + "]" * 5000
    response = await user.client.post(
        f"{API}/check", content=deep, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422


async def test_a_confirmed_order_counts_once_however_often_it_arrives(user: RunningUser) -> None:
    created = await register(user.client, "olga")
    confirmed = Envelope.wrap(
        OrderConfirmed(
            order_id="o-1",
            user_id=created["userId"],
            items=(),
            total_cents=1000,
            payment_method_id="pm-1",
        ),
        correlation_id="o-1",
    )
    publisher = AmqpPublisher(user.connection, bus_config(user.deps.settings))
    try:
        for _ in range(3):  # a redelivery and a relay's republish after a crash
            await publisher.publish(confirmed)

        async def counted() -> bool:
            stored = await user.deps.db["users"].find_one({"_id": created["userId"]})
            return stored is not None and stored["order_count"] >= 1

        await eventually(counted, what="the confirmed order counted")
        await asyncio.sleep(0.5)
        stored = await user.deps.db["users"].find_one({"_id": created["userId"]})
        assert stored is not None
        assert (stored["order_count"], stored["preferred_payment_method"]) == (1, "pm-1")
    finally:
        await publisher.close()
