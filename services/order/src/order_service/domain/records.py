"""The records an order keeps: its lines, its view of the payment, its timeline and audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from order_service.domain.status import Status


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class OrderLine(_Model):
    """A product at the price the order was placed at; `fulfilled_quantity` once stock answered."""

    product_id: str
    name: str = ""
    quantity: int
    price_cents: int
    fulfilled_quantity: int | None = None

    @property
    def billable(self) -> int:
        """Units charged: the fulfilled quantity once known, else the quantity asked for."""
        return self.quantity if self.fulfilled_quantity is None else self.fulfilled_quantity


class PaymentState(_Model):
    """The order's view of its payment."""

    status: Literal["none", "requested", "authorized", "failed"] = "none"
    payment_id: str | None = None
    attempts: int = 0  # provider calls, as the payment service reports them
    requests: int = 0  # PaymentRequested sent (the `attempt` number of the last one)
    retries: int = 0  # of those, the customer's retries (capped by the policy)
    last_error: str | None = None
    method_id: str = ""


class ClearedPayment(_Model):
    """The card and amount a Manager approved after the fraud rules flagged them: the approval
    covers exactly this pair, never another card or another amount."""

    method_id: str
    amount_cents: int


class TimelineEntry(_Model):
    """One saga step as the timeline shows it."""

    at: datetime
    step: str
    service: str
    event_type: str | None = None
    event_id: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)


class AuditEntry(_Model):
    """Who moved the order, when and from where."""

    at: datetime
    action: str
    from_status: Status | None
    to_status: Status
    user_id: str | None = None
    role: str = "system"
    ip: str | None = None
    device: str | None = None
    region: str | None = None
