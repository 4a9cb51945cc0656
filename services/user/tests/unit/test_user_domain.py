"""Pure rules of the user service, and the production password-hashing parameters."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from argon2 import extract_parameters
from user_service import domain
from user_service.passwords import Passwords
from user_service.settings import OWASP_MIN_MEMORY_KIB, OWASP_MIN_TIME_COST, UserSettings

pytestmark = pytest.mark.unit

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_production_argon2_defaults_meet_owasp_minimum() -> None:
    settings = UserSettings()
    assert settings.argon2_memory_kib >= OWASP_MIN_MEMORY_KIB == 19 * 1024
    assert settings.argon2_time_cost >= OWASP_MIN_TIME_COST == 2
    assert settings.argon2_parallelism >= 1
    hasher = Passwords.from_settings(settings).hasher
    params = extract_parameters(hasher.hash("a long enough password"))
    assert params.type.name == "ID"
    assert params.memory_cost >= 19 * 1024 and params.time_cost >= 2
    with pytest.raises(ValueError, match="OWASP"):
        UserSettings(env="dev", argon2_memory_kib=1024)


async def test_unknown_user_costs_as_much_as_a_wrong_password() -> None:
    passwords = Passwords.from_settings(UserSettings())
    stored = await passwords.hash("the real password")
    await passwords.verify(None, "warm-up")  # makes the dummy hash once

    async def timed(hash_: str | None) -> float:
        started = time.perf_counter()
        assert not await passwords.verify(hash_, "a wrong password")
        return time.perf_counter() - started

    wrong = min([await timed(stored) for _ in range(3)])
    unknown = min([await timed(None) for _ in range(3)])
    assert unknown > 0.5 * wrong and wrong > 0.5 * unknown


def test_password_policy() -> None:
    ok = domain.password_problem("long-enough-pw", email="a@b.co", username="abc")
    assert ok is None
    assert domain.password_problem("short", email="a@b.co", username="abc")
    assert domain.password_problem("Someone@Example.com", email="someone@example.com", username="x")
    assert domain.password_problem("longusername", email="a@b.co", username="LongUsername")


def test_lockout_maths() -> None:
    window, lockout = timedelta(minutes=15), timedelta(minutes=15)
    four = [NOW - timedelta(seconds=s) for s in (50, 40, 30, 20)]
    assert domain.lockout_remaining(four, NOW, max_failures=5, window=window, lockout=lockout) == 0
    five = [*four, NOW - timedelta(seconds=10)]
    left = domain.lockout_remaining(five, NOW, max_failures=5, window=window, lockout=lockout)
    assert left == 15 * 60 - 10
    later = NOW + timedelta(minutes=15)
    assert (
        domain.lockout_remaining(five, later, max_failures=5, window=window, lockout=lockout) == 0
    )


def test_one_default_address_and_completeness() -> None:
    ids = iter(["a1", "a2", "a3"])
    items = domain.append_items([], [{"city": "x"}, {"city": "y"}], "address_id", lambda: next(ids))
    assert [(i["address_id"], i["is_default"]) for i in items] == [("a1", True), ("a2", False)]
    items = domain.append_items(
        items, [{"city": "z", "is_default": True}], "address_id", lambda: next(ids)
    )
    assert [i["is_default"] for i in items] == [False, False, True]
    items = domain.remove_item(items, "address_id", "a3")
    assert [i["is_default"] for i in items] == [True, False]
    assert not domain.is_profile_complete(items, [])
    assert domain.is_profile_complete(items, [{"payment_method_id": "p"}])
    with pytest.raises(domain.DomainError):
        domain.make_default(items, "address_id", "nope")


@pytest.mark.parametrize(
    ("value", "found"),
    [
        ("4111111111111111", True),
        ("4111 1111 1111 1111", True),
        ("4111-1111-1111-1111", True),
        (4242424242424242, True),
        ({"deep": ["note", {"x": "card 5555555555554444 thanks"}]}, True),
        ("4111111111111112", False),  # not Luhn-valid
        ("123456789012", False),  # too short
        ("pm_card_ok", False),
        ("+15550100", False),
    ],
)
def test_card_numbers_are_found_anywhere(value: object, found: bool) -> None:
    assert domain.contains_card_number(value) is found


def test_region_and_device() -> None:
    assert domain.region_for(None, "127.0.0.1") == "local"
    assert domain.region_for(None, "10.1.2.3") == "local"
    assert domain.region_for(None, "8.8.8.8") == "unknown"
    assert domain.region_for("eu-west", "8.8.8.8") == "eu-west"
    assert domain.region_for(None, "8.8.8.8", lambda ip: "US") == "US"
    desktop = domain.device_from(
        None,
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/120.0.0.0 Safari/537.36",
    )
    assert (desktop.browser, desktop.os, desktop.device_type) == ("Chrome", "Windows", "desktop")
    given = domain.device_from({"browser": "MyApp", "deviceType": "tv"}, None)
    assert given.label() == "MyApp (tv)"


def test_refresh_verdicts() -> None:
    fresh = {"expires_at": NOW + timedelta(days=1), "used_at": None, "revoked": False}
    assert domain.refresh_verdict(fresh, NOW) == "rotate"
    assert domain.refresh_verdict({**fresh, "used_at": NOW}, NOW) == "reuse"
    assert domain.refresh_verdict({**fresh, "revoked": True}, NOW) == "invalid"
    assert domain.refresh_verdict({**fresh, "expires_at": NOW}, NOW) == "invalid"
    assert domain.refresh_verdict(None, NOW) == "invalid"


def test_rate_limit_headers() -> None:
    assert domain.rate_limit_headers(300, 1, 59) == {
        "RateLimit-Limit": "300",
        "RateLimit-Remaining": "299",
        "RateLimit-Reset": "59",
    }
    spent = domain.rate_limit_headers(300, 420, 0)
    assert spent["RateLimit-Remaining"] == "0" and spent["RateLimit-Reset"] == "1"


def test_what_revokes_tokens() -> None:
    user = {"role": "Manager", "disabled": False}
    assert domain.revokes_tokens(user, {"role": "Customer"})
    assert domain.revokes_tokens(user, {"disabled": True})
    assert not domain.revokes_tokens(user, {"role": "Manager", "phone": "123"})
    assert not domain.revokes_tokens(user, {"disabled": False, "email": "a@example.com"})


def test_token_versions_reach_back_no_further_than_a_token_lives() -> None:
    at = datetime(2026, 1, 1, 12, tzinfo=UTC)
    ttl = timedelta(minutes=15)
    horizon = at - ttl - domain.TOKEN_VERSIONS_MARGIN
    assert domain.token_versions_since(at, None, ttl) == horizon
    assert domain.token_versions_since(at, at - timedelta(hours=3), ttl) == horizon
    recent = at - timedelta(seconds=30)
    assert domain.token_versions_since(at, recent, ttl) == recent
