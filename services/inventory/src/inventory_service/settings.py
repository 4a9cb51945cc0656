"""Settings of the inventory service: shared fields from kit, its own under `INVENTORY_`."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from kit.quarantine import DEFAULT_MAX_FAILURES
from kit.settings import ServiceSettings


class InventorySettings(ServiceSettings):
    """The inventory service's settings (`INVENTORY_PORT`, …)."""

    model_config = SettingsConfigDict(env_prefix="INVENTORY_")

    service_name: ClassVar[str] = "inventory"
    port: int = 8002

    # How long a reservation holds stock before the sweeper gives it back (api: 15 min).
    reservation_ttl_seconds: float = Field(900.0, gt=0)
    sweep_interval_seconds: float = Field(5.0, gt=0)
    # Longer than a sweep takes, short enough that a dead instance's lease lapses quickly.
    sweep_lease_seconds: float = Field(30.0, gt=0)
    # Failed releases of one reservation before the sweeper quarantines it (kit.quarantine).
    sweep_max_failures: int = Field(DEFAULT_MAX_FAILURES, ge=1)
