"""HTTP routes of the payment service, under `/api/v1/payments` (reached through the gateway).

`GET /api/v1/payments/{orderId}`: the payment lookup for Admins (architecture.md): status,
amounts, fraud verdict and every provider attempt with its time, outcome and error.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request

from kit.auth import Principal, require_roles
from kit.errors import PROBLEM_RESPONSES, not_found
from kit.models import ResponseModel
from payment_service import store
from payment_service.bootstrap import Deps

router = APIRouter(prefix="/api/v1/payments", tags=["payments"])


def get_deps(request: Request) -> Deps:
    deps: Deps = request.app.state.deps
    return deps


DepsDep = Annotated[Deps, Depends(get_deps)]
AdminUser = Annotated[Principal, require_roles("Admin")]


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


class PaymentOut(ResponseModel):
    payment_id: str
    order_id: str
    user_id: str
    status: str
    amount_cents: int
    captured_cents: int
    currency: str
    payment_method_id: str | None = None
    fraud: FraudOut | None = None
    attempts: list[AttemptOut]
    created_at: datetime
    updated_at: datetime | None = None


@router.get("/{order_id}", response_model=PaymentOut, responses=PROBLEM_RESPONSES)
async def get_payment(order_id: str, deps: DepsDep, _admin: AdminUser) -> PaymentOut:
    """An order's payment with every provider attempt (Admin)."""
    payment = await store.payment_for(deps.db, order_id)
    if payment is None:
        raise not_found("PAYMENT_NOT_FOUND")
    attempts = await store.attempts(deps.db, payment)
    return PaymentOut(
        payment_id=payment["_id"],
        order_id=payment["order_id"],
        user_id=payment["user_id"],
        status=payment["status"],
        amount_cents=payment["amount_cents"],
        captured_cents=payment.get("captured_cents", 0),
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
            for a in attempts
        ],
        created_at=payment["created_at"],
        updated_at=payment.get("updated_at"),
    )


ROUTERS = [router]
