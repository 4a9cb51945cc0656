"""The per-account lockout holds under concurrent guesses, and the rate-limited routes say how
much is left (api.md, "Rate limits"), through the gateway."""

from __future__ import annotations

import asyncio
import secrets

import httpx
import pytest

from tests.e2e.shop import PASSWORD

from .conftest import Secure

pytestmark = [pytest.mark.security, pytest.mark.asyncio(loop_scope="package")]

LOGIN = "/api/v1/users/login"


async def test_twenty_parallel_guesses_get_at_most_five_password_checks(secure: Secure) -> None:
    name = f"pl{secrets.token_hex(4)}"
    await secure.shop.register(name)

    async def guess(n: int) -> httpx.Response:
        body = {"identifier": name, "password": f"wrong-guess-{n:02}"}
        return await secure.client.post(LOGIN, json=body)

    responses = await asyncio.gather(*(guess(n) for n in range(20)))
    statuses = [r.status_code for r in responses]
    # A 401 is a password that was checked; a 429 one that never was.
    assert statuses.count(401) <= 5 and statuses.count(429) == 20 - statuses.count(401), statuses
    for response in responses:
        if response.status_code == 429:
            assert response.json()["code"] == "TOO_MANY_ATTEMPTS"
            assert int(response.headers["retry-after"]) > 0
    right = await secure.client.post(LOGIN, json={"identifier": name, "password": PASSWORD})
    assert right.status_code == 429, right.text


async def test_rate_limited_routes_send_ratelimit_headers_through_the_gateway(
    secure: Secure,
) -> None:
    name = f"rl{secrets.token_hex(4)}"
    answers = [
        await secure.client.post(
            "/api/v1/users/register",
            json={"username": name, "email": f"{name}@example.com", "password": PASSWORD},
        ),
        await secure.client.post("/api/v1/users/check", json={"identifier": name}),
        await secure.client.post(LOGIN, json={"identifier": name, "password": PASSWORD}),
        await secure.client.post(LOGIN, json={"identifier": name, "password": "wrong-password"}),
    ]
    assert [a.status_code for a in answers] == [201, 200, 200, 401], [a.text for a in answers]
    for answer in answers:
        limit = int(answer.headers["ratelimit-limit"])
        remaining = int(answer.headers["ratelimit-remaining"])
        reset = int(answer.headers["ratelimit-reset"])
        assert limit == 300 and 0 <= remaining < limit and 1 <= reset <= 60, answer.headers
    secure.remember(answers[0].json()["accessToken"], answers[0].json()["refreshToken"])
    secure.remember(answers[2].json()["accessToken"], answers[2].json()["refreshToken"])
