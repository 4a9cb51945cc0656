"""Settings of the notify service: shared fields from kit, its own under `NOTIFY_`."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from kit.settings import ServiceSettings


class NotifySettings(ServiceSettings):
    """The notify service's settings (`NOTIFY_PORT`, `NOTIFY_SMTP_PORT`, …)."""

    model_config = SettingsConfigDict(env_prefix="NOTIFY_")

    service_name: ClassVar[str] = "notify"
    port: int = 8005
    # Local mode: the runner's aiosmtpd sink; compose: Mailpit.
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    smtp_timeout: float = Field(5.0, gt=0)
    mail_from: str = "shop <no-reply@shop.local>"
    # Links in messages (payment retry, decision) point at the public gateway.
    public_base_url: str = "http://127.0.0.1:8000"
    # A failing channel is retried after these delays (seconds), then recorded as failed.
    delivery_retry_delays: Annotated[tuple[float, ...], NoDecode] = (1.0, 5.0, 30.0)
    delivery_max_attempts: int = Field(4, ge=1)
    # The delivery worker's fallback poll: handlers hand it the rows they committed (born leased
    # to it), held rows and retries come back to it when due; the poll claims what nobody holds
    # (a dead process's rows once their lease ran out).
    delivery_poll_seconds: float = Field(5.0, gt=0)
    delivery_lease_seconds: float = Field(60.0, gt=0)
    # The profile nudge waits this long, then goes out only if the profile is still incomplete.
    nudge_hold_seconds: float = Field(10.0, ge=0)
    # The sandbox SMS and push providers' delay per call.
    sandbox_latency_seconds: float = Field(0.005, ge=0)

    # Not named `_comma_separated`: that would replace kit's validator of the same name, and
    # TRUSTED_PROXIES / BUS_RETRY_DELAYS from the environment would no longer parse.
    @field_validator("delivery_retry_delays", mode="before")
    @classmethod
    def _delivery_delays_csv(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(float(part) for part in value.split(",") if part.strip())
        return value
