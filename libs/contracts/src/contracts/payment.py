"""Events emitted by the payment service; each names `user_id` so notify can reach the customer."""

from __future__ import annotations

from pydantic import Field

from contracts.base import Event
from contracts.registry import event


class _Payment(Event):
    order_id: str
    user_id: str
    payment_id: str


class _Money(_Payment):
    amount_cents: int = Field(ge=0)
    currency: str = "USD"


@event("payment")
class PaymentAuthorized(_Money):
    """The provider authorized the amount; nothing is captured yet."""

    fraud_flag: bool = False
    attempts: int = Field(ge=1)


@event("payment")
class PaymentFailed(_Payment):
    """Authorization failed: declined, or transient errors outlasted the retries."""

    reason: str
    attempts: int = Field(ge=1)
    retryable: bool


@event("payment")
class PaymentReviewRequired(Event):
    """Fraud rules flagged the payment; a Manager must review the order before it is charged."""

    order_id: str
    user_id: str
    fraud_score: float = Field(ge=0, le=1)
    reasons: tuple[str, ...] = ()


@event("payment")
class PaymentCaptured(_Money):
    """The authorized amount was captured: the customer is charged."""


@event("payment")
class PaymentVoided(_Money):
    """An authorization was released without charging (order cancelled or rejected)."""

    reason: str | None = None


@event("payment")
class PaymentRefunded(_Money):
    """A captured amount was paid back to the customer (for a received return: `return_id`)."""

    return_id: str | None = None
    reason: str | None = None


@event("payment")
class PaymentRefundFailed(_Money):
    """The provider refused a refund, or it would exceed what is left of the capture."""

    return_id: str | None = None
    reason: str
