"""Request and response models of the payment service's HTTP API (`api.py`)."""

from __future__ import annotations

from datetime import datetime

from kit.models import ResponseModel
from kit.mongo import Doc


class AttemptOut(ResponseModel):
    number: int
    request: int
    at: datetime
    outcome: str
    error: str | None = None
    payment_method_id: str


class FraudOut(ResponseModel):
    score: float
    reasons: list[str]
    flagged: bool


class RefundOut(ResponseModel):
    return_id: str
    amount_cents: int
    status: str
    reason: str | None = None
    at: datetime


class PaymentOut(ResponseModel):
    payment_id: str
    order_id: str
    user_id: str
    status: str
    amount_cents: int
    captured_cents: int
    refunded_cents: int
    refunds: list[RefundOut]
    currency: str
    payment_method_id: str | None = None
    fraud: FraudOut | None = None
    attempts: list[AttemptOut]
    created_at: datetime
    updated_at: datetime | None = None

    @classmethod
    def of(cls, payment: Doc) -> PaymentOut:
        """A stored payment (its `attempts` read in full: `commands.payment_of`)."""
        return cls(
            payment_id=payment["_id"],
            order_id=payment["order_id"],
            user_id=payment["user_id"],
            status=payment["status"],
            amount_cents=payment["amount_cents"],
            captured_cents=payment.get("captured_cents", 0),
            refunded_cents=payment.get("refunded_cents") or 0,
            refunds=[
                RefundOut(
                    return_id=r["return_id"],
                    amount_cents=r["amount_cents"],
                    status=r["status"],
                    reason=r.get("reason"),
                    at=r["at"],
                )
                for r in sorted(
                    payment.get("refunds", {}).values(), key=lambda r: (r["at"], r["return_id"])
                )
            ],
            currency=payment["currency"],
            payment_method_id=payment.get("payment_method_id"),
            fraud=FraudOut(**payment["fraud"]) if payment.get("fraud") else None,
            attempts=[
                AttemptOut(
                    number=a["number"],
                    request=a["request"],
                    at=a["at"],
                    outcome=a["outcome"],
                    error=a.get("error"),
                    payment_method_id=a["payment_method_id"],
                )
                for a in payment["attempts"]
            ],
            created_at=payment["created_at"],
            updated_at=payment.get("updated_at"),
        )
