"""The records an order keeps: its lines, its view of the payment and of the shipment, its
returns, its timeline and audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from order_service.domain.status import FulfilmentStatus, ReturnStatus, Status


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
    # A return's step: which return, and the status it moved to (the order's status stays).
    return_id: str | None = None
    return_status: ReturnStatus | None = None


class Fulfilment(_Model):
    """The order's view of its shipment, kept from shipping's events (only ever forward)."""

    status: FulfilmentStatus = "PENDING"
    shipment_id: str
    created_at: datetime | None = None  # when the order heard of it (ShipmentCreated)
    carrier: str | None = None
    tracking_number: str | None = None
    shipped_at: datetime | None = None
    delivered_at: datetime | None = None


class ReturnLine(_Model):
    """Units of one product a return sends back."""

    product_id: str
    quantity: int


class OrderReturn(_Model):
    """A customer's return of delivered units, and what became of it.

    `refund_cents` is fixed when the return is requested (`domain.returns.refund_for`);
    `refunded_cents` is what payment reported refunding. `due` is the end of the return's
    current wait (APPROVED: the parcel must arrive; RECEIVED: payment must answer), else None.
    """

    return_id: str
    status: ReturnStatus = "REQUESTED"
    items: list[ReturnLine]
    refund_cents: int
    reason: str
    requested_by: str | None = None
    # The Idempotency-Key the customer sent with the request, if any (a replay answers this).
    request_key: str | None = None
    created_at: datetime
    updated_at: datetime
    decided_by: str | None = None
    decision_reason: str | None = None
    approved_at: datetime | None = None
    rejected_at: datetime | None = None
    # REJECTED: the person's reason, or NOT_RECEIVED when the parcel never came.
    rejection_reason: str | None = None
    received_at: datetime | None = None
    received_by: str | None = None
    refunded_at: datetime | None = None
    refunded_cents: int = 0
    refund_id: str | None = None  # the payment the refund was made on
    # REFUND_FAILED: the provider's reason, or REFUND_TIMEOUT when payment never answered.
    failure_reason: str | None = None
    restocked_at: datetime | None = None
    due: datetime | None = None
