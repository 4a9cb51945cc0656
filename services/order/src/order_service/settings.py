"""Settings of the order service: shared fields from kit, its own under `ORDER_`."""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from kit.quarantine import DEFAULT_MAX_FAILURES
from kit.settings import ServiceSettings
from order_service.domain import Policy


class OrderSettings(ServiceSettings):
    """The order service's settings (`ORDER_PORT`, `APPROVAL_THRESHOLD_CENTS`, …)."""

    model_config = SettingsConfigDict(env_prefix="ORDER_")

    service_name: ClassVar[str] = "order"
    port: int = 8003
    # api.md names this one without the service prefix; the prefixed name works too.
    approval_threshold_cents: int = Field(
        500_000,
        ge=0,
        validation_alias=AliasChoices(
            "APPROVAL_THRESHOLD_CENTS", "ORDER_APPROVAL_THRESHOLD_CENTS", "approval_threshold_cents"
        ),
    )
    stock_window_seconds: float = Field(15 * 60, gt=0)
    decision_window_seconds: float = Field(15 * 60, gt=0)
    approval_window_seconds: float = Field(24 * 3600, gt=0)
    # api.md: the payment-failed window defaults to 15 min.
    payment_window_seconds: float = Field(15 * 60, gt=0)
    # How long PAID waits for inventory's StockCommitted before the order is COMMIT_FAILED.
    commit_window_seconds: float = Field(120, gt=0)
    # api.md: customer payment retries per order, then 409 RETRY_LIMIT_REACHED.
    max_payment_retries: int = Field(5, ge=0)
    # After delivery (api.md "Fulfilment and returns"); the unprefixed names work too.
    return_window_days: float = Field(
        30,
        gt=0,
        validation_alias=AliasChoices(
            "RETURN_WINDOW_DAYS", "ORDER_RETURN_WINDOW_DAYS", "return_window_days"
        ),
    )
    # An approved return whose parcel never arrives is REJECTED NOT_RECEIVED after this.
    return_receive_days: float = Field(
        30,
        gt=0,
        validation_alias=AliasChoices(
            "RETURN_RECEIVE_DAYS", "ORDER_RETURN_RECEIVE_DAYS", "return_receive_days"
        ),
    )
    # A received return payment never answers about is REFUND_FAILED REFUND_TIMEOUT after this.
    refund_timeout_seconds: float = Field(
        900,
        gt=0,
        validation_alias=AliasChoices(
            "REFUND_TIMEOUT_SECONDS", "ORDER_REFUND_TIMEOUT_SECONDS", "refund_timeout_seconds"
        ),
    )
    user_url: str = "http://127.0.0.1:8001"
    inventory_url: str = "http://127.0.0.1:8002"
    http_timeout_seconds: float = Field(2.0, gt=0)
    # The deadline sweeper: how often it looks, and how long its lease outlives a stalled holder.
    sweep_interval_seconds: float = Field(2.0, gt=0)
    sweep_lease_seconds: float = Field(30.0, gt=0)
    # Failed closes of one order before the sweeper quarantines it (kit.quarantine).
    sweep_max_failures: int = Field(DEFAULT_MAX_FAILURES, ge=1)

    def policy(self) -> Policy:
        """The plain values the domain's transitions take."""
        return Policy(
            approval_threshold_cents=self.approval_threshold_cents,
            stock_window=timedelta(seconds=self.stock_window_seconds),
            decision_window=timedelta(seconds=self.decision_window_seconds),
            approval_window=timedelta(seconds=self.approval_window_seconds),
            payment_window=timedelta(seconds=self.payment_window_seconds),
            commit_window=timedelta(seconds=self.commit_window_seconds),
            max_payment_retries=self.max_payment_retries,
            return_window=timedelta(days=self.return_window_days),
            return_receive_window=timedelta(days=self.return_receive_days),
            refund_window=timedelta(seconds=self.refund_timeout_seconds),
        )
