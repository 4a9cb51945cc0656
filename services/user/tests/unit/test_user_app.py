"""Smoke tests of the user service: settings, wiring, the app without its lifespan."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient
from user_service.bootstrap import bootstrap
from user_service.handlers import HANDLERS
from user_service.main import create_app
from user_service.settings import UserSettings

from bus.fake import NullBus
from kit.auth.signing import SigningKey

pytestmark = pytest.mark.unit


def test_settings_defaults_and_env_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    assert UserSettings().service_name == "user"
    assert UserSettings().port == 8001
    monkeypatch.setenv("USER_PORT", "9001")
    assert UserSettings().port == 9001


def test_bootstrap_takes_fakes() -> None:
    mongo: AsyncMongoClient[Any] = AsyncMongoClient("mongodb://127.0.0.1:1", connect=False)
    bus = NullBus()
    deps = bootstrap(UserSettings(), mongo=mongo, bus=bus, signing_key=SigningKey.generate())
    assert deps.bus is bus
    assert deps.db.name == deps.settings.database_name
    assert isinstance(HANDLERS, dict)


async def test_app_answers_healthz_without_lifespan() -> None:
    app = create_app(UserSettings())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://user") as client:
        response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.headers["x-request-id"]
    api_paths = [p for p in app.openapi()["paths"] if p.startswith("/api/")]
    assert all(p.startswith("/api/v1/") for p in api_paths)
