"""Preparation through the public API: the Admin's token, a catalogue, customers with complete
profiles (an address and a `pm_card_ok` card), all concurrently."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from bench.system import ADMIN_EMAIL, ADMIN_PASSWORD

PASSWORD = "bench-password-1"
ADDRESS = {
    "label": "home",
    "line1": "1 Bench St",
    "city": "Springfield",
    "state": "IL",
    "zip": "12345",
    "country": "US",
}
PRICE_CENTS = 1_000  # far below the approval threshold
STOCK = 1_000_000  # never the limit


@dataclass
class Customer:
    user_id: str
    headers: dict[str, str]
    orders: int = 0


async def gather_limited[T](
    count: int, make: Callable[[int], Awaitable[T]], concurrency: int
) -> list[T]:
    """`make(0)` … `make(count-1)`, at most `concurrency` at a time, results in order."""
    semaphore = asyncio.Semaphore(concurrency)

    async def one(i: int) -> T:
        async with semaphore:
            return await make(i)

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def expect(response: httpx.Response, status: int) -> dict[str, Any]:
    if response.status_code != status:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path}: "
            f"{response.status_code} {response.text[:300]}"
        )
    body: dict[str, Any] = response.json()
    return body


async def post_retrying(
    client: httpx.AsyncClient, path: str, body: dict[str, Any], **kwargs: Any
) -> httpx.Response:
    """POST, again after a 5xx (the embedded Mongo gives up on contended commits): preparation
    is not what is measured, so it rides over them; the retried writes are all-or-nothing."""
    for attempt in range(8):
        response = await client.post(path, json=body, **kwargs)
        if response.status_code < 500:
            return response
        await asyncio.sleep(0.05 * 2**attempt)
    return response


async def admin_headers(client: httpx.AsyncClient) -> dict[str, str]:
    response = await client.post(
        "/api/v1/users/login", json={"identifier": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    )
    body = await expect(response, 200)
    return {"authorization": f"Bearer {body['accessToken']}"}


async def create_products(
    client: httpx.AsyncClient, admin: dict[str, str], count: int, concurrency: int = 8
) -> list[str]:
    tag = secrets.token_hex(3)

    async def one(i: int) -> str:
        body = {
            "name": f"Bench item {tag}-{i}",
            "description": "made by the benchmark",
            "category": f"bench-{i % 20}",
            "priceCents": PRICE_CENTS,
            "stockCount": STOCK,
        }
        response = await post_retrying(client, "/api/v1/products", body, headers=admin)
        return str((await expect(response, 201))["productId"])

    return await gather_limited(count, one, concurrency)


async def register(client: httpx.AsyncClient, name: str) -> tuple[str, dict[str, str]]:
    body = {"username": name, "email": f"{name}@example.com", "password": PASSWORD}
    created = await expect(await post_retrying(client, "/api/v1/users/register", body), 201)
    return str(created["userId"]), {"authorization": f"Bearer {created['accessToken']}"}


async def create_customers(
    client: httpx.AsyncClient, count: int, *, complete: bool = True, concurrency: int = 8
) -> list[Customer]:
    """Registered customers; with `complete`, each with a default address and a good card."""
    tag = secrets.token_hex(3)

    async def one(i: int) -> Customer:
        user_id, headers = await register(client, f"b{tag}{i}")
        if complete:
            details = {
                "addresses": [ADDRESS],
                "paymentMethods": [{"type": "card", "token": "pm_card_ok"}],
            }
            response = await post_retrying(
                client, "/api/v1/users/me/details", details, headers=headers
            )
            profile = await expect(response, 200)
            if not profile["flags"]["isProfileComplete"]:
                raise RuntimeError(f"profile not complete: {profile}")
        return Customer(user_id, headers)

    return await gather_limited(count, one, concurrency)


async def timed[T](work: Awaitable[T]) -> tuple[T, float]:
    t0 = time.perf_counter()
    result = await work
    return result, time.perf_counter() - t0
