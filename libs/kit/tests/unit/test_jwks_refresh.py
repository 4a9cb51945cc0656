"""The JWKS cache forgets keys: a key removed from the user service's JWKS stops verifying within
`JWKS_TTL_SECONDS` (api.md, "Signing keys"), served over real HTTP by uvicorn. The server
doubles for the user service (`user_service_double`; test_revocation.py uses it too)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from devkit.testing import serving
from kit.app import create_app
from kit.auth import SigningKey, issue_access_token, jwks_document
from kit.auth.revocation import TOKEN_VERSIONS_PATH
from kit.settings import ServiceSettings

from .conftest import DemoSettings, router

pytestmark = pytest.mark.unit


def user_service_double(
    served: list[SigningKey], versions: dict[str, int] | None = None
) -> FastAPI:
    """What verifiers ask of the user service: the JWKS (whatever `served` holds at the time of
    each request) and the token versions (`versions`, all of them at every poll)."""
    app = FastAPI()

    @app.get("/jwks.json")
    async def jwks() -> dict[str, list[dict[str, str]]]:
        return jwks_document(served)

    @app.get(TOKEN_VERSIONS_PATH)
    async def token_versions() -> dict[str, Any]:
        items = [{"userId": u, "version": v} for u, v in (versions or {}).items()]
        return {"items": items, "cursor": "next"}

    return app


def test_the_ttl_is_a_setting_of_at_most_five_minutes() -> None:
    assert ServiceSettings().jwks_ttl_seconds == 300
    assert DemoSettings(env="test", jwks_ttl_seconds=1.5).jwks_ttl_seconds == 1.5
    with pytest.raises(ValueError):
        DemoSettings(env="test", jwks_ttl_seconds=301)


async def test_a_key_removed_from_the_jwks_stops_verifying_within_the_ttl(
    signing_key: SigningKey, other_key: SigningKey
) -> None:
    served = [signing_key, other_key]
    async with serving(user_service_double(served)) as base:
        settings = DemoSettings(
            env="test", log_level="WARNING", jwks_url=f"{base}/jwks.json", jwks_ttl_seconds=1
        )
        app = create_app(settings, title="demo", routers=[router])
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://demo") as client,
        ):

            async def status(key: SigningKey) -> int:
                token = issue_access_token(
                    key, "u1", "Customer", settings.jwt_issuer, settings.jwt_audience
                )
                response = await client.get("/me", headers={"authorization": f"Bearer {token}"})
                return response.status_code

            assert await status(signing_key) == 200
            assert await status(other_key) == 200
            served.remove(other_key)  # the user service retired it (a leaked key, say)
            removed_at = time.monotonic()
            while await status(other_key) == 200:
                assert time.monotonic() - removed_at < 1 + 1.0, "still verifies past the TTL"
                await asyncio.sleep(0.05)
            assert await status(other_key) == 401
            assert await status(signing_key) == 200  # the key still published still verifies
