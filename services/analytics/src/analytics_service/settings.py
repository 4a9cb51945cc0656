"""Settings of the analytics service: shared fields from kit, its own under `ANALYTICS_`."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from kit.settings import ServiceSettings


class AnalyticsSettings(ServiceSettings):
    """The analytics service's settings (`ANALYTICS_PORT`, …)."""

    model_config = SettingsConfigDict(env_prefix="ANALYTICS_")

    service_name: ClassVar[str] = "analytics"
    port: int = 8006
    # Win-back: a customer inactive this long gets a code once; the sweep runs this often.
    winback_after_days: int = Field(30, ge=1)
    winback_sweep_seconds: float = Field(3600.0, gt=0)
    # Deliveries are handled in batches (bus.batch): at most this many per transaction, and a
    # batch waits at most this long after its first delivery for more (analytics is no step of
    # the saga: a quarter second of delay costs nothing, each batch saves a transaction per
    # event; measured by make bench at concurrency 1, ≈ 3 orders/s: 0.05 s took ≈ 3 batches per
    # order, 0.25 s about one).
    batch_max: int = Field(50, ge=1)
    batch_wait_seconds: float = Field(0.25, gt=0)
