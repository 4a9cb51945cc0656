"""The per-account lockout under concurrent guesses, and the RateLimit-* headers of the
rate-limited routes (api.md, "Rate limits"), against the real broker and Mongo."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from user_service.passwords import Passwords

from devkit.user_testing import RunningUser, running_user_service, service_settings

pytestmark = pytest.mark.integration

API = "/api/v1/users"
PASSWORD = "long-enough-pw"


async def register(user: RunningUser, name: str) -> None:
    response = await user.client.post(
        f"{API}/register",
        json={"username": name, "email": f"{name}@example.com", "password": PASSWORD},
    )
    assert response.status_code == 201, response.text


def count_password_checks(passwords: Passwords) -> list[str]:
    """Record every password the real argon2 check is asked about (the hasher stays real)."""
    checked: list[str] = []
    check: Callable[[str, str], bool] = passwords._check

    def counting(stored: str, password: str) -> bool:
        checked.append(password)
        return check(stored, password)

    passwords._check = counting  # type: ignore[method-assign]
    return checked


async def test_twenty_parallel_wrong_passwords_check_at_most_five(user: RunningUser) -> None:
    await register(user, "para")
    checked = count_password_checks(user.deps.passwords)

    async def guess(n: int) -> httpx.Response:
        body = {"identifier": "para", "password": f"wrong-guess-{n:02}"}
        return await user.client.post(f"{API}/login", json=body)

    responses = await asyncio.gather(*(guess(n) for n in range(20)))
    statuses = sorted(r.status_code for r in responses)
    assert len(checked) <= 5, (len(checked), statuses)
    assert statuses.count(401) <= 5 and statuses.count(429) >= 15, statuses
    assert set(statuses) == {401, 429}, statuses
    for response in responses:
        if response.status_code == 429:
            assert response.json()["code"] == "TOO_MANY_ATTEMPTS"
            assert int(response.headers["retry-after"]) >= 1
    # the right password is refused as well while the account is locked, and not checked
    before = len(checked)
    right = await user.client.post(
        f"{API}/login", json={"identifier": "para", "password": PASSWORD}
    )
    assert right.status_code == 429 and len(checked) == before


async def test_a_success_clears_the_failures_before_it(user: RunningUser) -> None:
    await register(user, "oops")
    for n in range(4):
        wrong = {"identifier": "oops", "password": f"typo-{n}"}
        assert (await user.client.post(f"{API}/login", json=wrong)).status_code == 401
    right = {"identifier": "oops", "password": PASSWORD}
    assert (await user.client.post(f"{API}/login", json=right)).status_code == 200
    statuses = []
    for n in range(5):
        wrong = {"identifier": "oops", "password": f"again-{n}"}
        statuses.append((await user.client.post(f"{API}/login", json=wrong)).status_code)
    assert statuses == [401] * 5


@pytest.fixture
async def limited(mongo_url: str, amqp_url: str, run_prefix: str) -> AsyncIterator[RunningUser]:
    """A user service that allows 4 requests per address and day on check/register/login (a
    day, so that the fixed window does not turn over during the test)."""
    settings = service_settings(
        mongo_url, amqp_url, run_prefix, ip_rate_limit=4, ip_rate_window_seconds=86_400
    )
    async with running_user_service(settings) as running:
        yield running


def rate_limit_of(response: httpx.Response) -> tuple[int, int, int]:
    headers = response.headers
    return (
        int(headers["ratelimit-limit"]),
        int(headers["ratelimit-remaining"]),
        int(headers["ratelimit-reset"]),
    )


async def test_rate_limited_routes_send_ratelimit_headers(limited: RunningUser) -> None:
    client = limited.client
    registered = await client.post(
        f"{API}/register",
        json={"username": "rlh", "email": "rlh@example.com", "password": PASSWORD},
    )
    checked = await client.post(f"{API}/check", json={"identifier": "rlh"})
    wrong = await client.post(f"{API}/login", json={"identifier": "rlh", "password": "nope-nope"})
    invalid = await client.post(f"{API}/login", json={"identifier": "rlh"})
    refused = await client.post(f"{API}/check", json={"identifier": "rlh"})
    assert [r.status_code for r in (registered, checked, wrong, invalid, refused)] == [
        201,
        200,
        401,
        422,
        429,
    ]
    seen = [rate_limit_of(r) for r in (registered, checked, wrong, invalid, refused)]
    assert [(limit, remaining) for limit, remaining, _ in seen] == [
        (4, 3),
        (4, 2),
        (4, 1),
        (4, 0),
        (4, 0),
    ]
    assert all(1 <= reset <= 86_400 for _, _, reset in seen), seen
    assert refused.json()["code"] == "RATE_LIMITED"
    assert int(refused.headers["retry-after"]) == seen[-1][2]
