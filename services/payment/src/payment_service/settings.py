"""Settings of the payment service: shared fields from kit, its own under `PAYMENT_`."""

from __future__ import annotations

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from kit.settings import ServiceSettings


class PaymentSettings(ServiceSettings):
    """The payment service's settings (`PAYMENT_PORT`, …)."""

    model_config = SettingsConfigDict(env_prefix="PAYMENT_")

    service_name: ClassVar[str] = "payment"
    port: int = 8004
