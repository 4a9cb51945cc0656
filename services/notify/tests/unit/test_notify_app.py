"""Smoke tests of the notify service: settings, wiring, the app without its lifespan."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from notify_service.bootstrap import bootstrap
from notify_service.handlers import HANDLERS
from notify_service.main import create_app
from notify_service.settings import NotifySettings
from pymongo import AsyncMongoClient

from bus.fake import NullBus

pytestmark = pytest.mark.unit


def test_settings_defaults_and_env_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    assert NotifySettings().service_name == "notify"
    assert NotifySettings().port == 8005
    monkeypatch.setenv("NOTIFY_PORT", "9005")
    assert NotifySettings().port == 9005


def test_bootstrap_takes_fakes() -> None:
    mongo: AsyncMongoClient[Any] = AsyncMongoClient("mongodb://127.0.0.1:1", connect=False)
    bus = NullBus()
    deps = bootstrap(NotifySettings(), mongo=mongo, bus=bus)
    assert deps.bus is bus
    assert deps.db.name == deps.settings.database_name
    assert isinstance(HANDLERS, dict)


async def test_app_answers_healthz_without_lifespan() -> None:
    app = create_app(NotifySettings())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://notify") as client:
        response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.headers["x-request-id"]
    api_paths = [p for p in app.openapi()["paths"] if p.startswith("/api/")]
    assert all(p.startswith("/api/v1/") for p in api_paths)
