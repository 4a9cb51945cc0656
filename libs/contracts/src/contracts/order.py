"""Events emitted by the order service."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from contracts.base import Event
from contracts.registry import event
from contracts.types import Address, Line, PricedLine


@event("order")
class OrderPlaced(Event):
    """A customer placed an order that passed the pre-order checks."""

    order_id: str
    user_id: str
    items: tuple[PricedLine, ...]
    total_cents: int = Field(ge=0)
    currency: str = "USD"
    address_id: str
    payment_method_id: str
    promo_code: str | None = None


@event("order")
class OrderApprovalRequired(Event):
    """An order waits for a Manager's approval (high value or flagged by fraud rules)."""

    order_id: str
    user_id: str
    reason: Literal["highValue", "fraud"]
    total_cents: int = Field(ge=0)
    currency: str = "USD"
    # Until when inventory should keep holding the stock (the approval deadline).
    hold_until: datetime | None = None


@event("order")
class OrderApproved(Event):
    """A Manager or Admin approved an order that waited for approval."""

    order_id: str
    approved_by: str
    reason: str


@event("order")
class PaymentRequested(Event):
    """Order asks payment to authorize `amount_cents` for an order (one per attempt)."""

    order_id: str
    user_id: str
    amount_cents: int = Field(ge=0)
    currency: str = "USD"
    payment_method_id: str
    review_passed: bool = False
    attempt: int = Field(ge=1)


@event("order")
class OrderPaid(Event):
    """An order's payment is authorized; inventory may commit these lines."""

    order_id: str
    lines: tuple[Line, ...]
    payment_id: str


@event("order")
class OrderConfirmed(Event):
    """An order is final: paid and its stock committed (terminal)."""

    order_id: str
    user_id: str
    items: tuple[PricedLine, ...]
    total_cents: int = Field(ge=0)
    currency: str = "USD"
    payment_method_id: str
    payment_id: str | None = None
    partial_fulfillment: bool = False
    # Where the parcel goes: the address copied at placement (shipping's one source for it).
    address: Address | None = None


@event("order")
class OrderRejected(Event):
    """An order was rejected: out of stock, by a Manager, or for fraud (terminal)."""

    order_id: str
    user_id: str
    reason: Literal["OUT_OF_STOCK", "MANAGER_REJECTED", "FRAUD"]
    alternatives: tuple[str, ...] = ()
    rejected_by: str | None = None
    comment: str | None = None


@event("order")
class OrderCancelled(Event):
    """An order was cancelled by its customer, an Admin or a deadline (terminal)."""

    order_id: str
    user_id: str
    reason: Literal[
        "CUSTOMER",
        "DECISION_TIMEOUT",
        "APPROVAL_TIMEOUT",
        "PAYMENT_FAILED",
        "PAYMENT_TIMEOUT",
        "COMMIT_FAILED",
        "ADMIN",
        # Inventory never answered OrderPlaced within the stock window (the order never waits
        # forever, even when its reservation request is dead-lettered).
        "STOCK_TIMEOUT",
    ]
    cancelled_by: str | None = None


@event("order")
class PromotionRedeemed(Event):
    """A promotion code was used by a placed order."""

    user_id: str
    code: str
    order_id: str


class _Return(Event):
    return_id: str
    order_id: str
    user_id: str


@event("order")
class ReturnRequested(_Return):
    """A customer asked to send back delivered units; `refund_cents` is what receiving refunds."""

    lines: tuple[Line, ...]
    reason: str
    refund_cents: int = Field(ge=0)
    currency: str = "USD"


@event("order")
class ReturnApproved(_Return):
    """A Manager or Admin accepted a return request: the customer may send the parcel."""

    decided_by: str
    reason: str | None = None


@event("order")
class ReturnRejected(_Return):
    """A Manager or Admin refused a return request: nothing is refunded (terminal)."""

    decided_by: str
    reason: str | None = None


@event("order")
class ReturnReceived(_Return):
    """The returned units reached the warehouse: payment refunds, inventory restocks."""

    lines: tuple[Line, ...]
    refund_cents: int = Field(ge=0)
    currency: str = "USD"
    payment_id: str
