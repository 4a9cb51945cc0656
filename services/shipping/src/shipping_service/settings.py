"""Settings of the shipping service: shared fields from kit, its own under `SHIPPING_`."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from kit.quarantine import DEFAULT_MAX_FAILURES
from kit.settings import ServiceSettings


class ShippingSettings(ServiceSettings):
    """The shipping service's settings (`SHIPPING_PORT`, `SHIPPING_AUTO_ADVANCE_SECONDS`, …)."""

    model_config = SettingsConfigDict(env_prefix="SHIPPING_")

    service_name: ClassVar[str] = "shipping"
    port: int = 8007

    # Demos (api.md): when set, the sandbox carrier ships a shipment PENDING for this long and
    # delivers one SHIPPED for this long, on its own (the system actor). Unset: only an Admin does.
    auto_advance_seconds: float | None = Field(None, gt=0)
    sweep_interval_seconds: float = Field(1.0, gt=0)
    # Longer than a sweep takes, short enough that a dead instance's lease lapses quickly.
    sweep_lease_seconds: float = Field(30.0, gt=0)
    # Failed advances of one shipment before the sweeper quarantines it (kit.quarantine).
    sweep_max_failures: int = Field(DEFAULT_MAX_FAILURES, ge=1)
