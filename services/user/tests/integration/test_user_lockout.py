"""The per-account lockout under concurrent guesses, and the RateLimit-* headers of the
rate-limited routes (api.md, "Rate limits"), against the real broker and Mongo."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest
from user_service.passwords import Passwords
from user_service.testing import RunningUser

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
    right = await user.client.post(f"{API}/login", json={"identifier": "para", "password": PASSWORD})
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
