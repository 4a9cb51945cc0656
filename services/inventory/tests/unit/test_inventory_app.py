"""Inventory's own settings (shared smoke tests: tests/unit/test_service_apps.py)."""

from __future__ import annotations

import pytest
from inventory_service.settings import InventorySettings

pytestmark = pytest.mark.unit


def test_reservation_and_seed_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = InventorySettings()
    assert defaults.reservation_ttl_seconds == 900 and defaults.seed_catalog is True
    monkeypatch.setenv("SHOP_SEED_CATALOG", "0")
    monkeypatch.setenv("INVENTORY_RESERVATION_TTL_SECONDS", "60")
    configured = InventorySettings()
    assert configured.seed_catalog is False and configured.reservation_ttl_seconds == 60
