"""Settings of the order service: shared fields from kit, its own under `ORDER_`."""

from __future__ import annotations

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from kit.settings import ServiceSettings


class OrderSettings(ServiceSettings):
    """The order service's settings (`ORDER_PORT`, …)."""

    model_config = SettingsConfigDict(env_prefix="ORDER_")

    service_name: ClassVar[str] = "order"
    port: int = 8003
