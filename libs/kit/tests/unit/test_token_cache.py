"""Verified tokens are kept until their expiry: the signature is checked once per token and
process, while revocation, expiry and the signing key's retirement still refuse it at once."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest

from kit.auth import InvalidToken, SigningKey, StaticKeySource, TokenVerifier, issue_access_token
from kit.auth.revocation import TokenVersions

pytestmark = pytest.mark.unit

ISSUER, AUDIENCE = "shop-user", "shop"


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every RS256 signature check the verifier makes (PyJWT's decode), by token."""
    seen: list[str] = []
    decode = jwt.decode

    def counting(token: str, *args: Any, **kwargs: Any) -> Any:
        seen.append(token)
        return decode(token, *args, **kwargs)

    monkeypatch.setattr("kit.auth.verify.jwt.decode", counting)
    return seen


def issue(key: SigningKey, sub: str = "u1", role: str = "Customer", **kwargs: Any) -> str:
    return issue_access_token(key, sub, role, ISSUER, AUDIENCE, **kwargs)


def verifier(key: SigningKey, **kwargs: Any) -> TokenVerifier:
    return TokenVerifier(StaticKeySource([key]), ISSUER, AUDIENCE, **kwargs)


async def test_the_same_token_is_checked_once(signing_key: SigningKey, decodes: list[str]) -> None:
    check = verifier(signing_key)
    token, other = issue(signing_key), issue(signing_key, "u2")
    for _ in range(3):
        assert (await check.verify(token)).user_id == "u1"
    assert (await check.verify(other)).user_id == "u2"
    assert decodes == [token, other]
    # Another token's bytes are another entry: a tampered copy is checked, and refused.
    head, body, signature = token.split(".")
    with pytest.raises(InvalidToken):
        await check.verify(f"{head}.{body}.{signature[:-4]}AAAA")
    claims = await check.claims(token)
    claims["role"] = "Admin"  # a caller changing its copy changes nothing kept
    assert (await check.verify(token)).role == "Customer"


async def test_a_revoked_or_demoted_users_kept_token_is_refused_at_once(
    signing_key: SigningKey, decodes: list[str]
) -> None:
    versions = TokenVersions(synchronised=True)
    check = verifier(signing_key, revocations=versions)
    admin = issue(signing_key, "boss", "Admin")
    assert (await check.verify(admin)).role == "Admin"
    assert (await check.verify(admin)).role == "Admin"
    versions.apply([("boss", 1)])  # demoted to Customer: the user service bumps the version
    with pytest.raises(InvalidToken, match="revoked"):
        await check.verify(admin)
    assert decodes == [admin]  # refused from the kept claims, without a new signature check
    fresh = issue(signing_key, "boss", "Customer", token_version=1)
    assert (await check.verify(fresh)).role == "Customer"


async def test_a_kept_token_is_refused_once_it_expired(signing_key: SigningKey) -> None:
    check = verifier(signing_key, leeway=0)
    # Issued long enough ago that it expires at the next whole second.
    expires = int(time.time()) + 1
    issued = datetime.fromtimestamp(expires, UTC) - timedelta(minutes=15)
    token = issue(signing_key, now=issued, ttl=timedelta(minutes=15))
    await check.verify(token)
    await check.verify(token)  # kept
    await asyncio.sleep(max(0.0, expires - time.time()) + 0.05)
    with pytest.raises(InvalidToken, match="expired"):
        await check.verify(token)
    assert len(check.verified) == 0


async def test_a_kept_token_of_a_retired_key_is_refused(
    signing_key: SigningKey, other_key: SigningKey
) -> None:
    keys = StaticKeySource([signing_key, other_key])
    check = TokenVerifier(keys, ISSUER, AUDIENCE)
    token = issue(other_key)
    await check.verify(token)
    del keys.keys[other_key.kid]  # the user service stopped publishing it (JWKS refreshed)
    with pytest.raises(InvalidToken, match="unknown kid"):
        await check.verify(token)


async def test_at_most_cache_size_tokens_are_kept_least_recently_used_out(
    signing_key: SigningKey, decodes: list[str]
) -> None:
    check = verifier(signing_key, cache_size=2)
    a, b, c = (issue(signing_key, sub) for sub in ("a", "b", "c"))
    await check.verify(a)
    await check.verify(b)
    await check.verify(a)  # a is now the most recently used
    await check.verify(c)  # b goes
    assert len(check.verified) == 2
    await check.verify(a)
    await check.verify(b)
    assert decodes == [a, b, c, b]

    uncached = verifier(signing_key, cache_size=0)
    decodes.clear()
    await uncached.verify(a)
    await uncached.verify(a)
    assert decodes == [a, a]
