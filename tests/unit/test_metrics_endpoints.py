"""Every service, the gateway included, serves its own `/metrics`; the gateway proxies nobody's."""

from __future__ import annotations

import importlib
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.unit

SERVICES = ("user", "inventory", "order", "payment", "notify", "analytics", "shipping", "gateway")


def _app(service: str) -> Any:
    module = importlib.import_module(f"{service}_service.main")
    settings = importlib.import_module(f"{service}_service.settings")
    return module.create_app(getattr(settings, f"{service.capitalize()}Settings")(env="test"))


@pytest.mark.parametrize("service", SERVICES)
async def test_metrics_of_the_process_itself(service: str) -> None:
    app = _app(service)  # no lifespan: a proxied /metrics would fail without its client
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=f"http://{service}") as client:
        await client.get("/healthz")
        response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    line = (
        f'shop_http_request_duration_seconds_count{{method="GET",route="/healthz",'
        f'service="{service}",status="200"}}'
    )
    assert line in response.text
    assert "/metrics" not in app.openapi()["paths"]
