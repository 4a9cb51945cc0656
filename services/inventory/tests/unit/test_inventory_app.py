"""Inventory's own settings (shared smoke tests: tests/unit/test_service_apps.py)."""

from __future__ import annotations

import pytest
from inventory_service.settings import InventorySettings

pytestmark = pytest.mark.unit


def test_reservation_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = InventorySettings()
    assert defaults.reservation_ttl_seconds == 900
    assert not hasattr(defaults, "seed_catalog")  # the demo catalogue is devkit's (make run)
    monkeypatch.setenv("INVENTORY_RESERVATION_TTL_SECONDS", "60")
    configured = InventorySettings()
    assert configured.reservation_ttl_seconds == 60


def test_reading_a_product_documents_the_401_of_a_bad_token() -> None:
    """Anyone may read a product; a token that is sent is verified, so 401 is in the contract
    (schemathesis in tests/security found it undocumented)."""
    from inventory_service.main import create_app

    app = create_app(InventorySettings(env="test"))
    responses = app.openapi()["paths"]["/api/v1/products/{product_id}"]["get"]["responses"]
    assert {"200", "401", "404"} <= responses.keys()
