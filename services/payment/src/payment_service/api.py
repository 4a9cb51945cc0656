"""HTTP routes of the payment service, under `/api/v1/payments` (reached through the gateway).

`GET /api/v1/payments/{orderId}`: the payment lookup for Admins (architecture.md): status,
amounts, fraud verdict, every provider attempt with its time, outcome and error, and the
refunds of its returns (`refunds`, `refundedCents`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter

from kit.auth import Principal, require_roles
from kit.errors import PROBLEM_RESPONSES
from payment_service import commands
from payment_service.deps import DepsDep
from payment_service.schemas import PaymentOut

router = APIRouter(prefix="/api/v1/payments", tags=["payments"])

AdminUser = Annotated[Principal, require_roles("Admin")]


@router.get("/{order_id}", response_model=PaymentOut, responses=PROBLEM_RESPONSES)
async def get_payment(order_id: str, deps: DepsDep, _admin: AdminUser) -> PaymentOut:
    """An order's payment with every provider attempt (Admin)."""
    return PaymentOut.of(await commands.payment_of(deps, order_id))


ROUTERS = [router]
