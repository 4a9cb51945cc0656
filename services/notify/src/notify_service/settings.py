"""Settings of the notify service: shared fields from kit, its own under `NOTIFY_`."""

from __future__ import annotations

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from kit.settings import ServiceSettings


class NotifySettings(ServiceSettings):
    """The notify service's settings (`NOTIFY_PORT`, …)."""

    model_config = SettingsConfigDict(env_prefix="NOTIFY_")

    service_name: ClassVar[str] = "notify"
    port: int = 8005
