"""Revocation (api.md, "Edge rules"): a token below its user's current token version is a 401
wherever a token is verified, the versions come from the user service's feed over real HTTP, a
process refuses tokens until it has synchronised once, and it keeps the last versions it learnt
while the user service is down."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI

from devkit.testing import free_port, serving
from kit.app import create_app
from kit.auth import SigningKey, issue_access_token
from kit.auth.revocation import TokenVersions

from .conftest import DemoSettings, router
from .test_jwks_refresh import user_service_double

pytestmark = pytest.mark.unit


@asynccontextmanager
async def demo_app(
    user_service_url: str, poll_seconds: float = 0.1
) -> AsyncIterator[tuple[DemoSettings, httpx.AsyncClient]]:
    """kit's app as every service builds it (verifier and feed from the settings), running."""
    settings = DemoSettings(
        env="test",
        log_level="WARNING",
        jwks_url=f"{user_service_url}/jwks.json",
        token_versions_poll_seconds=poll_seconds,
    )
    app: FastAPI = create_app(settings, title="demo", routers=[router])
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://demo") as client,
    ):
        yield settings, client


def bearer(
    key: SigningKey, settings: DemoSettings, sub: str, role: str, **kw: int
) -> dict[str, str]:
    token = issue_access_token(key, sub, role, settings.jwt_issuer, settings.jwt_audience, **kw)
    return {"authorization": f"Bearer {token}"}


async def test_a_token_below_its_users_version_is_401_wherever_it_is_verified(
    signing_key: SigningKey,
) -> None:
    versions = {"demoted": 1}
    async with (
        serving(user_service_double([signing_key], versions)) as url,
        demo_app(url) as (settings, client),
    ):
        old = bearer(signing_key, settings, "demoted", "Admin")  # issued before the change: 0
        for path in ("/me", "/admin", "/approve", "/maybe"):
            response = await client.get(path, headers=old)
            assert response.status_code == 401, (path, response.text)
            assert response.json()["code"] == "UNAUTHENTICATED"
        new = bearer(signing_key, settings, "demoted", "Customer", token_version=1)
        assert (await client.get("/me", headers=new)).status_code == 200
        someone = bearer(signing_key, settings, "someone", "Admin")
        assert (await client.get("/admin", headers=someone)).status_code == 200

        versions["someone"] = 3  # an Admin deletes them: the next poll refuses their token
        changed = time.monotonic()
        while (await client.get("/admin", headers=someone)).status_code == 200:
            assert time.monotonic() - changed < 2, "the revocation did not arrive"
            await asyncio.sleep(0.05)
        assert (await client.get("/admin", headers=someone)).status_code == 401


async def test_tokens_wait_for_the_first_sync_and_survive_a_user_service_outage(
    signing_key: SigningKey,
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    versions = {"gone": 1}
    # The longest poll interval allowed: a process that has never synchronised retries sooner.
    async with demo_app(url, poll_seconds=4) as (settings, client):
        token = bearer(signing_key, settings, "u1", "Customer")
        revoked = bearer(signing_key, settings, "gone", "Customer")
        # the user service is not up: no versions known, so no token is trusted (fail closed),
        # and the process says it is not ready, so nothing is sent its way yet
        assert (await client.get("/me", headers=token)).status_code == 401
        unready = await client.get("/readyz")
        assert unready.status_code == 503 and unready.json()["checks"]["token_versions"] is False
        async with serving(user_service_double([signing_key], versions), port):
            started = time.monotonic()
            while (await client.get("/readyz")).status_code != 200:
                assert time.monotonic() - started < 1, "not synchronised within a second"
                await asyncio.sleep(0.05)
            # (the JWKS, which failed too, is fetched again 2 s after its failure)
            while (await client.get("/me", headers=token)).status_code != 200:
                assert time.monotonic() - started < 3, "never accepted the token"
                await asyncio.sleep(0.05)
        # the user service is down again: what it said still holds, in both directions
        await asyncio.sleep(0.3)  # a few failed polls
        assert (await client.get("/me", headers=token)).status_code == 200
        assert (await client.get("/me", headers=revoked)).status_code == 401


def test_versions_never_move_back_and_a_token_without_ver_is_version_0() -> None:
    table = TokenVersions(synchronised=True)
    table.apply([("u1", 2), ("u1", 1), ("u2", 0)])
    assert not table.admits("u1", 1) and table.admits("u1", 2) and table.admits("u1", 3)
    assert table.admits("u2", 0) and table.admits("u3", 0)
    assert not TokenVersions().admits("u3", 0)  # not synchronised yet
