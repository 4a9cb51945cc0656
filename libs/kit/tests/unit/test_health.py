"""/healthz and /readyz as a load balancer sees them."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import FastAPI

from kit.health import add_readiness_check

pytestmark = pytest.mark.unit


async def test_healthz_names_the_service(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "service": "demo"}
    assert response.headers["x-request-id"]


async def test_readyz_is_200_when_every_check_passes(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    async def ok() -> bool:
        return True

    add_readiness_check(app, "mongo", ok)
    add_readiness_check(app, "broker", ok)
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "service": "demo",
        "checks": {"mongo": True, "broker": True},
    }


async def test_readyz_is_503_when_a_check_fails(app: FastAPI, client: httpx.AsyncClient) -> None:
    async def ok() -> bool:
        return True

    async def down() -> bool:
        return False

    async def broken() -> bool:
        raise ConnectionError("refused")

    add_readiness_check(app, "mongo", ok)
    add_readiness_check(app, "broker", down)
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert response.json()["checks"] == {"mongo": True, "broker": False}

    add_readiness_check(app, "broker", broken)
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["broker"] is False


async def test_readyz_is_503_when_a_check_hangs(app: FastAPI, client: httpx.AsyncClient) -> None:
    async def hangs() -> bool:
        await asyncio.sleep(30)
        return True

    add_readiness_check(app, "mongo", hangs, timeout=0.05)
    loop = asyncio.get_running_loop()
    started = loop.time()
    response = await client.get("/readyz")
    assert loop.time() - started < 5
    assert response.status_code == 503
    assert response.json()["checks"] == {"mongo": False}
