"""Smoke tests of the analytics service: settings, wiring, the app without its lifespan."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from analytics_service.bootstrap import bootstrap
from analytics_service.handlers import HANDLERS
from analytics_service.main import create_app
from analytics_service.settings import AnalyticsSettings
from pymongo import AsyncMongoClient

from bus import ServiceBus
from bus.fake import NullBus

pytestmark = pytest.mark.unit


def test_settings_defaults_and_env_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    assert AnalyticsSettings().service_name == "analytics"
    assert AnalyticsSettings().port == 8006
    monkeypatch.setenv("ANALYTICS_PORT", "9006")
    assert AnalyticsSettings().port == 9006


def test_bootstrap_takes_fakes() -> None:
    mongo: AsyncMongoClient[Any] = AsyncMongoClient("mongodb://127.0.0.1:1", connect=False)
    bus = NullBus()
    deps = bootstrap(AnalyticsSettings(), mongo=mongo, bus=bus)
    assert deps.bus is bus
    assert deps.db.name == deps.settings.database_name
    assert isinstance(HANDLERS, dict)


async def test_app_answers_healthz_without_lifespan() -> None:
    app = create_app(AnalyticsSettings())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://analytics") as client:
        response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.headers["x-request-id"]
    api_paths = [p for p in app.openapi()["paths"] if p.startswith("/api/")]
    assert all(p.startswith("/api/v1/") for p in api_paths)


def test_the_real_bus_binds_every_event() -> None:
    mongo: AsyncMongoClient[Any] = AsyncMongoClient("mongodb://127.0.0.1:1", connect=False)
    deps = bootstrap(AnalyticsSettings(bus_prefix="x."), mongo=mongo)
    assert isinstance(deps.bus, ServiceBus)
    assert deps.bus.config.extra_bindings == ("#",)
    assert deps.bus.config.prefix == "x."
    assert deps.bus.config.service == "analytics"
