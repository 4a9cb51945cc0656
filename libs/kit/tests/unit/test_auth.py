"""Bearer tokens: which are accepted, which are a 401, roles (403) and ownership (404)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from fastapi import FastAPI, Request

from kit.auth import (
    JwksKeySource,
    Principal,
    SigningKey,
    TokenVerifier,
    issue_access_token,
    jwks_document,
    set_denied_hook,
)
from kit.auth.jwks import parse_jwks

pytestmark = pytest.mark.unit


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def assert_401(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "UNAUTHENTICATED"
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_valid_token_is_accepted(client: httpx.AsyncClient, token: Any) -> None:
    response = await client.get("/me", headers=bearer(token("u42", "Manager")))
    assert response.status_code == 200
    assert response.json() == {"userId": "u42", "role": "Manager"}


async def test_missing_token_is_401(client: httpx.AsyncClient) -> None:
    assert_401(await client.get("/me"))
    assert_401(await client.get("/me", headers={"authorization": "Basic dTpw"}))


async def test_expired_token_is_401(client: httpx.AsyncClient, token: Any) -> None:
    old = datetime.now(UTC) - timedelta(hours=1)
    assert_401(await client.get("/me", headers=bearer(token(now=old))))


async def test_wrong_audience_is_401(client: httpx.AsyncClient, token: Any) -> None:
    assert_401(await client.get("/me", headers=bearer(token(audience="someone-else"))))


async def test_wrong_issuer_is_401(client: httpx.AsyncClient, token: Any) -> None:
    assert_401(await client.get("/me", headers=bearer(token(issuer="evil"))))


async def test_hs256_signed_with_the_public_key_is_401(
    client: httpx.AsyncClient, signing_key: SigningKey, settings: Any
) -> None:
    public_pem = signing_key.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    claims = {
        "sub": "u1",
        "role": "Admin",
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": int(datetime.now(UTC).timestamp()),
        "exp": int((datetime.now(UTC) + timedelta(minutes=5)).timestamp()),
    }
    import hashlib
    import hmac

    header = {"alg": "HS256", "typ": "JWT", "kid": signing_key.kid}
    signing_input = f"{b64(header)}.{b64(claims)}".encode()
    signature = hmac.new(public_pem, signing_input, hashlib.sha256).digest()
    forged = signing_input.decode() + "." + base64.urlsafe_b64encode(signature).decode().rstrip("=")
    assert_401(await client.get("/me", headers=bearer(forged)))


async def test_alg_none_is_401(
    client: httpx.AsyncClient, signing_key: SigningKey, settings: Any
) -> None:
    claims = {
        "sub": "u1",
        "role": "Admin",
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": int(datetime.now(UTC).timestamp()),
        "exp": int((datetime.now(UTC) + timedelta(minutes=5)).timestamp()),
    }
    unsigned = f"{b64({'alg': 'none', 'typ': 'JWT', 'kid': signing_key.kid})}.{b64(claims)}."
    assert_401(await client.get("/me", headers=bearer(unsigned)))


async def test_unknown_kid_is_401(
    client: httpx.AsyncClient, other_key: SigningKey, settings: Any
) -> None:
    foreign = issue_access_token(
        other_key, "u1", "Admin", settings.jwt_issuer, settings.jwt_audience
    )
    assert_401(await client.get("/me", headers=bearer(foreign)))


async def test_known_kid_with_another_keys_signature_is_401(
    client: httpx.AsyncClient, signing_key: SigningKey, other_key: SigningKey, settings: Any
) -> None:
    forged = jwt.encode(
        {
            "sub": "u1",
            "role": "Admin",
            "iss": settings.jwt_issuer,
            "aud": settings.jwt_audience,
            "iat": int(datetime.now(UTC).timestamp()),
            "exp": int((datetime.now(UTC) + timedelta(minutes=5)).timestamp()),
        },
        other_key.private_key,
        algorithm="RS256",
        headers={"kid": signing_key.kid},
    )
    assert_401(await client.get("/me", headers=bearer(forged)))


async def test_garbage_and_unknown_role_are_401(client: httpx.AsyncClient, token: Any) -> None:
    assert_401(await client.get("/me", headers=bearer("not-a-jwt")))
    assert_401(await client.get("/me", headers=bearer(token(role="Superuser"))))


async def test_optional_user_is_none_without_token(client: httpx.AsyncClient, token: Any) -> None:
    assert (await client.get("/maybe")).json() == {"userId": None}
    assert (await client.get("/maybe", headers=bearer(token("u7")))).json() == {"userId": "u7"}
    assert_401(await client.get("/maybe", headers=bearer("broken")))


async def test_wrong_role_is_403_forbidden_and_calls_the_denied_hook(
    app: FastAPI, client: httpx.AsyncClient, token: Any
) -> None:
    denied: list[tuple[str, str, tuple[str, ...]]] = []

    async def hook(request: Request, principal: Principal, roles: tuple[str, ...]) -> None:
        denied.append((request.url.path, principal.user_id, roles))

    set_denied_hook(app, hook)
    response = await client.get("/admin", headers=bearer(token("u1", "Customer")))
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "FORBIDDEN"
    assert denied == [("/admin", "u1", ("Admin",))]

    assert (await client.get("/admin", headers=bearer(token("u2", "Admin")))).status_code == 200
    assert (await client.get("/approve", headers=bearer(token("m", "Manager")))).json() == {
        "by": "Manager"
    }
    assert (await client.get("/approve", headers=bearer(token("c")))).status_code == 403
    assert_401(await client.get("/admin"))


async def test_a_failing_denied_hook_still_answers_403(
    app: FastAPI, client: httpx.AsyncClient, token: Any
) -> None:
    async def hook(request: Request, principal: Principal, roles: tuple[str, ...]) -> None:
        raise RuntimeError("broker down")

    set_denied_hook(app, hook)
    response = await client.get("/admin", headers=bearer(token()))
    assert response.status_code == 403


async def test_ownership_hides_other_users_resources(client: httpx.AsyncClient, token: Any) -> None:
    owner = await client.get("/orders/o1", headers=bearer(token("u-owner")))
    assert owner.status_code == 200
    stranger = await client.get("/orders/o1", headers=bearer(token("u-other")))
    assert stranger.status_code == 404
    assert stranger.json()["code"] == "ORDER_NOT_FOUND"
    admin = await client.get("/orders/o1", headers=bearer(token("u-admin", "Admin")))
    assert admin.status_code == 200
    manager = await client.get("/orders/o1", headers=bearer(token("u-m", "Manager")))
    assert manager.status_code == 404


def test_jwks_document_has_public_parts_only(signing_key: SigningKey) -> None:
    document = jwks_document([signing_key])
    (jwk,) = document["keys"]
    assert set(jwk) == {"kty", "n", "e", "kid", "use", "alg"}
    assert jwk["kid"] == signing_key.kid
    assert jwk["alg"] == "RS256"
    assert parse_jwks(document)[signing_key.kid].public_numbers() == (
        signing_key.public_key.public_numbers()
    )


def test_kid_is_the_rfc7638_thumbprint_and_stable(signing_key: SigningKey) -> None:
    again = SigningKey.from_pem(signing_key.private_pem())
    assert again.kid == signing_key.kid
    assert SigningKey.load(signing_key.private_pem().decode()).kid == signing_key.kid
    # RFC 7638 section 3.1's example key and thumbprint.
    jwk = {
        "kty": "RSA",
        "n": (
            "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6"
            "tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v"
            "-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08q"
            "NLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awa"
            "pJzKnqDKgw"
        ),
        "e": "AQAB",
    }
    public = jwt.PyJWK(jwk, algorithm="RS256").key
    assert public is not None
    from kit.auth.signing import _b64url_uint

    numbers = public.public_numbers()
    assert _b64url_uint(numbers.n) == jwk["n"]
    canonical = json.dumps(jwk, sort_keys=True, separators=(",", ":")).encode()
    import hashlib

    thumbprint = base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).decode().rstrip("=")
    assert thumbprint == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_small_keys_are_refused() -> None:
    with pytest.raises(ValueError):
        SigningKey.generate(1024)


async def test_jwks_source_refreshes_on_unknown_kid_at_most_once_per_interval(
    signing_key: SigningKey, other_key: SigningKey
) -> None:
    served = [signing_key]
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(200, json=jwks_document(served))

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    source = JwksKeySource("http://user/jwks", client=http, min_refresh_interval=60)
    assert await source.get_key(signing_key.kid) is not None
    assert await source.get_key(signing_key.kid) is not None
    assert calls == 1  # cached
    assert await source.get_key("made-up") is None
    assert await source.get_key("made-up-too") is None
    assert calls == 1  # an unknown kid refetches at most once per interval

    served = [signing_key, other_key]  # the user service rotated its key
    source.min_refresh_interval = 0
    assert await source.get_key(other_key.kid) is not None
    assert calls == 2
    await http.aclose()


async def test_jwks_source_retries_soon_after_a_failed_fetch(signing_key: SigningKey) -> None:
    up = False

    def handler(request: httpx.Request) -> httpx.Response:
        if not up:
            raise httpx.ConnectError("refused")  # the user service is still starting
        return httpx.Response(200, json=jwks_document([signing_key]))

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    source = JwksKeySource("http://user/jwks", client=http, failure_backoff=0)
    assert await source.get_key(signing_key.kid) is None
    up = True
    assert await source.get_key(signing_key.kid) is not None
    await http.aclose()


async def test_jwks_source_survives_an_unreachable_user_service(signing_key: SigningKey) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    source = JwksKeySource("http://user/jwks", client=http)
    verifier = TokenVerifier(source, "shop-user", "shop")
    token = issue_access_token(signing_key, "u1", "Customer", "shop-user", "shop")
    from kit.auth import InvalidToken

    with pytest.raises(InvalidToken):
        await verifier.verify(token)
    await http.aclose()


async def test_verifier_returns_principal_with_token_id(signing_key: SigningKey) -> None:
    from kit.auth import StaticKeySource

    verifier = TokenVerifier(StaticKeySource([signing_key]), "shop-user", "shop")
    token = issue_access_token(
        signing_key, "u1", "Admin", "shop-user", "shop", extra={"jti": "t-1", "sub": "evil"}
    )
    principal = await verifier.verify(token)
    assert principal == Principal(user_id="u1", role="Admin", token_id="t-1")
