"""Settings of the analytics service: shared fields from kit, its own under `ANALYTICS_`."""

from __future__ import annotations

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from kit.settings import ServiceSettings


class AnalyticsSettings(ServiceSettings):
    """The analytics service's settings (`ANALYTICS_PORT`, …)."""

    model_config = SettingsConfigDict(env_prefix="ANALYTICS_")

    service_name: ClassVar[str] = "analytics"
    port: int = 8006
