"""/healthz and /readyz as a load balancer sees them."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

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


async def ready_gauge(client: httpx.AsyncClient) -> list[float]:
    text = (await client.get("/metrics")).text
    return [
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "shop_ready" and sample.labels == {"service": "demo"}
    ]


async def test_the_ready_gauge_follows_the_readiness_checks(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """An alive process whose dependency is down answers scrapes (`up` is 1): the gauge is what
    tells Prometheus it could not serve."""
    healthy = True

    async def mongo() -> bool:
        return healthy

    add_readiness_check(app, "mongo", mongo)
    assert await ready_gauge(client) == [1]
    healthy = False
    assert await ready_gauge(client) == [0]
    healthy = True
    assert await ready_gauge(client) == [1]
