"""Smoke tests of the gateway: settings, and the app without its lifespan."""

from __future__ import annotations

import httpx
import pytest
from gateway_service.main import create_app
from gateway_service.routing import SERVICES
from gateway_service.settings import GatewaySettings

pytestmark = pytest.mark.unit


def test_settings_defaults_and_env_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = GatewaySettings()
    assert settings.service_name == "gateway"
    assert settings.port == 8000
    assert settings.connect_timeout == 2.0 and settings.read_timeout == 15.0
    assert settings.max_body_bytes == 1024 * 1024
    assert list(settings.service_urls()) == list(SERVICES)
    assert settings.service_urls()["analytics"] == "http://127.0.0.1:8006"
    assert settings.service_urls()["shipping"] == "http://127.0.0.1:8007"
    monkeypatch.setenv("GATEWAY_USER_URL", "http://user:9001")
    monkeypatch.setenv("GATEWAY_PORT", "9000")
    assert GatewaySettings().service_urls()["user"] == "http://user:9001"
    assert GatewaySettings().port == 9000


async def test_app_answers_healthz_and_unknown_paths_without_lifespan() -> None:
    app = create_app(GatewaySettings())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        health = await client.get("/healthz")
        missing = await client.get("/nope")
    assert health.status_code == 200
    assert health.headers["x-request-id"]
    assert missing.status_code == 404
    assert missing.json()["code"] == "NOT_FOUND"


def test_the_gateway_replaces_kits_readyz_openapi_and_docs() -> None:
    app = create_app(GatewaySettings())
    plain = {getattr(route, "path", None) for route in app.router.routes}
    assert plain.isdisjoint({"/readyz", "/openapi.json", "/docs", "/redoc"})
    readyz = app.openapi()["paths"]["/readyz"]["get"]
    assert readyz["responses"]["503"]["description"] == "A service is not ready"
