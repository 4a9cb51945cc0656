"""No password, password hash, access or refresh token or card token (`pm_card_*`) in any log
line a service wrote, in any event on the bus (the shop's probe is bound to `#`), or in any API
response other than the login/refresh answers that hand the tokens out.

This module runs last in the package (after the attacks, the matrix and schemathesis), so the
logs and events it reads hold everything the whole suite did; it adds a journey of its own that
touches every secret: register, login, refresh, card added, order placed, profile and order
read back by the customer and the Admin.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import uuid

import httpx
import pytest

from tests.e2e.shop import ADDRESS

from .conftest import Secure

pytestmark = [pytest.mark.security, pytest.mark.asyncio(loop_scope="package")]

# A password hash or a card token, whoever it belongs to.
PATTERNS = re.compile(r"\$argon2|pm_card_[a-z]+|password_?hash", re.IGNORECASE)


def leaks(text: str, remembered: set[str]) -> list[str]:
    found = [m.group(0) for m in PATTERNS.finditer(text)]
    found += [f"{s[:6]}…" for s in remembered if s in text]
    return found


async def test_no_secret_in_logs_events_or_responses(secure: Secure) -> None:
    client = secure.client
    name = f"s{secrets.token_hex(5)}"
    password = f"pw-{secrets.token_urlsafe(12)}"
    secure.remember(password)
    created = await client.post(
        "/api/v1/users/register",
        json={"username": name, "email": f"{name}@example.com", "password": password},
    )
    assert created.status_code == 201, created.text
    secure.remember(created.json()["accessToken"], created.json()["refreshToken"])
    logged = await client.post(
        "/api/v1/users/login", json={"identifier": name, "password": password}
    )
    assert logged.status_code == 200, logged.text
    secure.remember(logged.json()["accessToken"], logged.json()["refreshToken"])
    refreshed = await client.post(
        "/api/v1/users/token/refresh", json={"refreshToken": logged.json()["refreshToken"]}
    )
    assert refreshed.status_code == 200, refreshed.text
    secure.remember(refreshed.json()["accessToken"], refreshed.json()["refreshToken"])
    me = {"authorization": f"Bearer {refreshed.json()['accessToken']}"}
    # a wrong password, logged as a failure: the attempt must not log what was typed
    wrong = f"wrong-{secrets.token_urlsafe(12)}"
    secure.remember(wrong)
    refused = await client.post("/api/v1/users/login", json={"identifier": name, "password": wrong})

    # Every response scanned, with the status it must have: a 500 or a 404 body holds no
    # secret because it holds nothing, so scanning it silently would prove nothing.
    responses: list[tuple[httpx.Response, int]] = [
        (refused, 401),
        (
            await client.post(
                "/api/v1/users/me/details",
                json={
                    "addresses": [ADDRESS],
                    "paymentMethods": [{"type": "card", "token": "pm_card_ok"}],
                },
                headers=me,
            ),
            200,
        ),
    ]
    user_id = created.json()["userId"]
    placed = await client.post(
        "/api/v1/orders",
        json={"items": [{"productId": secure.product_id, "quantity": 1}]},
        headers={**me, "Idempotency-Key": str(uuid.uuid4())},
    )
    assert placed.status_code == 202, placed.text
    order_id = placed.json()["orderId"]
    await asyncio.sleep(1.0)  # let the saga's first events and their log lines land
    admin = secure.shop.admin
    for path, headers in [
        ("/api/v1/users/me", me),
        (f"/api/v1/users/{user_id}", admin),
        ("/api/v1/users?limit=100", admin),
        (f"/api/v1/orders/{order_id}", me),
        (f"/api/v1/orders/{order_id}/timeline", admin),
        ("/api/v1/orders?limit=100", admin),
        (f"/api/v1/payments/{order_id}", admin),
        ("/api/v1/notifications?limit=100", me),
        ("/api/v1/audit?limit=100", admin),
        ("/api/v1/ops/dlq", admin),
    ]:
        responses.append((await client.get(path, headers=headers), 200))
    unexpected = [
        f"{r.request.method} {r.request.url.path}: {r.status_code}, not {status}: {r.text[:200]}"
        for r, status in responses
        if r.status_code != status
    ]
    assert not unexpected, unexpected

    found: list[str] = []
    for response, _ in responses:
        for leak in leaks(response.text, secure.secrets):
            found.append(f"response {response.request.url.path}: {leak}")
    for message in secure.shop.probe.messages:
        for leak in leaks(message.body.decode(errors="replace"), secure.secrets):
            found.append(f"event {message.type}: {leak}")
    assert len(secure.logs.lines) > 100
    for line in secure.logs.lines:
        for leak in leaks(line, secure.secrets):
            found.append(f"log: {leak} in {line[:300]}")
    assert not found, f"{len(found)} leaks:\n" + "\n".join(sorted(set(found))[:40])
