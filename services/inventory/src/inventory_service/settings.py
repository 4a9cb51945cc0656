"""Settings of the inventory service: shared fields from kit, its own under `INVENTORY_`."""

from __future__ import annotations

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from kit.settings import ServiceSettings


class InventorySettings(ServiceSettings):
    """The inventory service's settings (`INVENTORY_PORT`, …)."""

    model_config = SettingsConfigDict(env_prefix="INVENTORY_")

    service_name: ClassVar[str] = "inventory"
    port: int = 8002
