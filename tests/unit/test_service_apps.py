"""Smoke tests of every service behind the gateway: settings, wiring, the app without lifespan.

One parametrised test instead of six copies: what differs per service is its name and port.
"""

from __future__ import annotations

import importlib
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from bus.fake import NullBus
from kit.auth.signing import SigningKey

pytestmark = pytest.mark.unit

SERVICES = {"user": 8001, "inventory": 8002, "order": 8003, "payment": 8004, "notify": 8005,
            "analytics": 8006, "shipping": 8007}  # fmt: skip


def _module(service: str, name: str) -> Any:
    return importlib.import_module(f"{service}_service.{name}")


def _settings_class(service: str) -> Any:
    return getattr(_module(service, "settings"), f"{service.capitalize()}Settings")


@pytest.mark.parametrize(("service", "port"), SERVICES.items())
def test_settings_defaults_and_env_prefix(
    service: str, port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings_class(service)
    assert settings().service_name == service
    assert settings().port == port
    monkeypatch.setenv(f"{service.upper()}_PORT", str(port + 1000))
    assert settings().port == port + 1000


@pytest.mark.parametrize("service", SERVICES)
def test_bootstrap_takes_fakes(service: str) -> None:
    mongo: AsyncMongoClient[Any] = AsyncMongoClient("mongodb://127.0.0.1:1", connect=False)
    bus = NullBus()
    extra = {"signing_key": SigningKey.generate()} if service == "user" else {}
    deps = _module(service, "bootstrap").bootstrap(
        _settings_class(service)(), mongo=mongo, bus=bus, **extra
    )
    assert deps.bus is bus
    assert deps.db.name == deps.settings.database_name
    assert isinstance(_module(service, "handlers").HANDLERS, dict)


@pytest.mark.parametrize("service", SERVICES)
async def test_app_answers_healthz_without_lifespan(service: str) -> None:
    app = _module(service, "main").create_app(_settings_class(service)())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=f"http://{service}") as client:
        response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.headers["x-request-id"]
    api_paths = [p for p in app.openapi()["paths"] if p.startswith("/api/")]
    assert all(p.startswith("/api/v1/") for p in api_paths)
