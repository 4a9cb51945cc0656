"""Smoke tests of the inventory service: settings, wiring, the app without its lifespan."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from inventory_service.bootstrap import bootstrap
from inventory_service.handlers import HANDLERS
from inventory_service.main import create_app
from inventory_service.settings import InventorySettings
from pymongo import AsyncMongoClient

from bus.fake import NullBus

pytestmark = pytest.mark.unit


def test_settings_defaults_and_env_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    assert InventorySettings().service_name == "inventory"
    assert InventorySettings().port == 8002
    monkeypatch.setenv("INVENTORY_PORT", "9002")
    assert InventorySettings().port == 9002


def test_bootstrap_takes_fakes() -> None:
    mongo: AsyncMongoClient[Any] = AsyncMongoClient("mongodb://127.0.0.1:1", connect=False)
    bus = NullBus()
    deps = bootstrap(InventorySettings(), mongo=mongo, bus=bus)
    assert deps.bus is bus
    assert deps.db.name == deps.settings.database_name
    assert isinstance(HANDLERS, dict)


async def test_app_answers_healthz_without_lifespan() -> None:
    app = create_app(InventorySettings())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://inventory") as client:
        response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.headers["x-request-id"]
    api_paths = [p for p in app.openapi()["paths"] if p.startswith("/api/")]
    assert all(p.startswith("/api/v1/") for p in api_paths)


def test_reservation_and_seed_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = InventorySettings()
    assert defaults.reservation_ttl_seconds == 900 and defaults.seed_catalog is True
    monkeypatch.setenv("SHOP_SEED_CATALOG", "0")
    monkeypatch.setenv("INVENTORY_RESERVATION_TTL_SECONDS", "60")
    configured = InventorySettings()
    assert configured.seed_catalog is False and configured.reservation_ttl_seconds == 60
