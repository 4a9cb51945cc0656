"""Settings of the payment service: shared fields from kit, its own under `PAYMENT_`."""

from __future__ import annotations

from typing import ClassVar, Self

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from kit.settings import ServiceSettings
from payment_service.domain import worst_case_retry_seconds

# api.md: the default attempts of one payment, backoff included, fit in 5 s in local mode.
RETRY_BUDGET_SECONDS = 5.0


class PaymentSettings(ServiceSettings):
    """The payment service's settings (`PAYMENT_PORT`, `PAYMENT_MAX_ATTEMPTS`, …)."""

    model_config = SettingsConfigDict(env_prefix="PAYMENT_")

    service_name: ClassVar[str] = "payment"
    port: int = 8004
    max_attempts: int = Field(4, ge=1, le=10)
    backoff_base_seconds: float = Field(0.25, ge=0)
    backoff_cap_seconds: float = Field(1.5, ge=0)
    provider_latency_seconds: float = Field(0.05, ge=0)
    fraud_threshold: float = Field(0.7, gt=0, le=1)
    user_url: str = "http://127.0.0.1:8001"
    user_timeout_seconds: float = Field(2.0, gt=0)

    @model_validator(mode="after")
    def _retries_fit_the_budget(self) -> Self:
        # Sleeps plus one latency per call must fit api.md's 5 s, else a payment outlasts it.
        total = (
            worst_case_retry_seconds(
                self.max_attempts, self.backoff_base_seconds, self.backoff_cap_seconds
            )
            + self.max_attempts * self.provider_latency_seconds
        )
        if total > RETRY_BUDGET_SECONDS:
            raise ValueError(f"retries may take {total:.2f} s, over {RETRY_BUDGET_SECONDS} s")
        return self
