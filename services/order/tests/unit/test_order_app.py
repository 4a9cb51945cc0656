"""Smoke tests of the order service: settings, wiring, the app without its lifespan."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from order_service.bootstrap import bootstrap
from order_service.handlers import HANDLERS
from order_service.main import create_app
from order_service.settings import OrderSettings
from pymongo import AsyncMongoClient

from bus.fake import NullBus

pytestmark = pytest.mark.unit


def test_settings_defaults_and_env_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    assert OrderSettings().service_name == "order"
    assert OrderSettings().port == 8003
    monkeypatch.setenv("ORDER_PORT", "9003")
    assert OrderSettings().port == 9003


def test_bootstrap_takes_fakes() -> None:
    mongo: AsyncMongoClient[Any] = AsyncMongoClient("mongodb://127.0.0.1:1", connect=False)
    bus = NullBus()
    deps = bootstrap(OrderSettings(), mongo=mongo, bus=bus)
    assert deps.bus is bus
    assert deps.db.name == deps.settings.database_name
    assert isinstance(HANDLERS, dict)


async def test_app_answers_healthz_without_lifespan() -> None:
    app = create_app(OrderSettings())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://order") as client:
        response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.headers["x-request-id"]
    api_paths = [p for p in app.openapi()["paths"] if p.startswith("/api/")]
    assert all(p.startswith("/api/v1/") for p in api_paths)
