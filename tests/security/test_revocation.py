"""Revocation (api.md, "Edge rules"): deleting or disabling a user, or changing their role, takes
effect in every service within 5 s: the old access token is refused with 401, so its old role
grants nothing any more, at the gateway and at each service behind it."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from tests.e2e.shop import PASSWORD

from .conftest import Secure

pytestmark = [pytest.mark.security, pytest.mark.asyncio(loop_scope="package")]

WITHIN = 5.0  # seconds (api.md)

type Call = Callable[[], Awaitable[httpx.Response]]


async def refused_within(call: Call, what: str, seconds: float = WITHIN) -> httpx.Response:
    """Repeat `call` until it answers 401 UNAUTHENTICATED; fail when that takes over `seconds`."""
    started = time.monotonic()
    while True:
        response = await call()
        if response.status_code == 401:
            assert response.json()["code"] == "UNAUTHENTICATED", response.text
            return response
        elapsed = time.monotonic() - started
        assert elapsed < seconds, f"{what}: still {response.status_code} after {elapsed:.1f} s"
        await asyncio.sleep(0.1)


async def staff(secure: Secure, role: str) -> tuple[str, str, dict[str, str]]:
    """A new account of `role`, made by the Admin: its id, username and access token's headers."""
    name = f"{role.lower()[:3]}{secrets.token_hex(4)}"
    created = await secure.client.post(
        "/api/v1/users",
        json={"username": name, "email": f"{name}@example.com", "password": PASSWORD, "role": role},
        headers=secure.shop.admin,
    )
    assert created.status_code == 201, created.text
    headers = await secure.shop.login(name)
    secure.remember(headers["authorization"].removeprefix("Bearer "))
    return created.json()["userId"], name, headers


async def change_role(secure: Secure, user_id: str, role: str) -> None:
    response = await secure.client.patch(
        f"/api/v1/users/{user_id}", json={"role": role}, headers=secure.shop.admin
    )
    assert response.status_code == 200, response.text


def direct(secure: Secure, service: str, method: str, path: str, **kwargs: Any) -> Call:
    """A call straight to `service`'s own port, past the gateway."""

    async def call() -> httpx.Response:
        async with httpx.AsyncClient(base_url=secure.shop.urls[service], timeout=10) as client:
            return await client.request(method, path, **kwargs)

    return call


async def test_a_demoted_managers_old_token_no_longer_reads_reports(secure: Secure) -> None:
    user_id, name, old = await staff(secure, "Manager")

    async def reports() -> httpx.Response:
        return await secure.client.get("/api/v1/reports/sales", headers=old)

    assert (await reports()).status_code == 200
    await change_role(secure, user_id, "Customer")
    await refused_within(reports, "the gateway")
    await refused_within(
        direct(secure, "analytics", "GET", "/api/v1/reports/sales", headers=old), "analytics"
    )
    # a token issued after the change carries the new role: 403, not a report
    now_customer = await secure.shop.login(name)
    again = await secure.client.get("/api/v1/reports/sales", headers=now_customer)
    assert again.status_code == 403, again.text


async def test_a_deleted_customers_old_token_no_longer_lists_orders(secure: Secure) -> None:
    user_id, old = await secure.shop.register()
    secure.remember(old["authorization"].removeprefix("Bearer "))

    async def orders() -> httpx.Response:
        return await secure.client.get("/api/v1/orders", headers=old)

    assert (await orders()).status_code == 200
    deleted = await secure.client.delete(f"/api/v1/users/{user_id}", headers=secure.shop.admin)
    assert deleted.status_code == 204, deleted.text
    await refused_within(orders, "the gateway")
    await refused_within(direct(secure, "order", "GET", "/api/v1/orders", headers=old), "order")
    await refused_within(
        direct(secure, "notify", "GET", "/api/v1/notifications", headers=old), "notify"
    )
    await refused_within(direct(secure, "user", "GET", "/api/v1/users/me", headers=old), "user")


async def test_a_disabled_customers_old_token_is_refused(secure: Secure) -> None:
    user_id, old = await secure.shop.register()
    secure.remember(old["authorization"].removeprefix("Bearer "))
    disabled = await secure.client.patch(
        f"/api/v1/users/{user_id}", json={"disabled": True}, headers=secure.shop.admin
    )
    assert disabled.status_code == 200, disabled.text

    async def orders() -> httpx.Response:
        return await secure.client.get("/api/v1/orders", headers=old)

    await refused_within(orders, "the gateway")


async def test_a_demoted_admins_token_no_longer_redrives_dead_letters(secure: Secure) -> None:
    user_id, _, old = await staff(secure, "Admin")

    async def redrive() -> httpx.Response:
        return await secure.client.post("/api/v1/ops/dlq/analytics/redrive", headers=old)

    assert (await redrive()).status_code == 200
    await change_role(secure, user_id, "Customer")
    await refused_within(redrive, "the gateway's own route")
    # and the services behind it refuse what the old Admin role allowed there
    order_id = secure.order_id
    await refused_within(
        direct(secure, "payment", "GET", f"/api/v1/payments/{order_id}", headers=old), "payment"
    )
    product = {"name": "x", "description": "y", "category": "z", "priceCents": 1, "stockCount": 1}
    await refused_within(
        direct(secure, "inventory", "POST", "/api/v1/products", json=product, headers=old),
        "inventory",
    )


async def test_a_refresh_token_does_not_bring_back_the_old_role(secure: Secure) -> None:
    user_id, name, _ = await staff(secure, "Manager")
    login = await secure.client.post(
        "/api/v1/users/login", json={"identifier": name, "password": PASSWORD}
    )
    refresh_token = login.json()["refreshToken"]
    secure.remember(refresh_token, login.json()["accessToken"])
    await change_role(secure, user_id, "Customer")
    refreshed = await secure.client.post(
        "/api/v1/users/token/refresh", json={"refreshToken": refresh_token}
    )
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["role"] == "Customer"
    secure.remember(refreshed.json()["accessToken"], refreshed.json()["refreshToken"])
    headers = {"authorization": f"Bearer {refreshed.json()['accessToken']}"}
    denied = await secure.client.get("/api/v1/reports/sales", headers=headers)
    assert denied.status_code == 403, denied.text
