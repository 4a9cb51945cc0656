"""Shipping's own settings and OpenAPI (shared smoke tests: tests/unit/test_service_apps.py)."""

from __future__ import annotations

import pytest
from shipping_service.settings import ShippingSettings

pytestmark = pytest.mark.unit


def test_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = ShippingSettings()
    assert defaults.port == 8007 and defaults.database_name == "shipping"
    assert defaults.auto_advance_seconds is None  # off unless a demo asks for it
    monkeypatch.setenv("SHIPPING_AUTO_ADVANCE_SECONDS", "20")
    assert ShippingSettings().auto_advance_seconds == 20


def test_the_operations_of_api_md_are_documented() -> None:
    from shipping_service.main import create_app

    paths = create_app(ShippingSettings(env="test")).openapi()["paths"]
    assert set(paths["/api/v1/shipments"]) == {"get"}
    assert set(paths["/api/v1/shipments/{shipment_id}"]) == {"get"}
    ship = paths["/api/v1/shipments/{shipment_id}/ship"]["post"]
    assert {"200", "403", "404", "409", "422"} <= ship["responses"].keys()
    assert {"200", "403", "404", "409"} <= paths["/api/v1/shipments/{shipment_id}/deliver"]["post"][
        "responses"
    ].keys()
