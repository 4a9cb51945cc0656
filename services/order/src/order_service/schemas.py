"""Request and response models of the order service's HTTP API (camelCase on the wire), and how
a response is built from the domain's answer."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field

from kit.models import ResponseModel, StrictModel
from order_service.domain import (
    FulfilmentStatus,
    Order,
    OrderReturn,
    Precheck,
    ReturnStatus,
    Status,
)

# --- bodies -----------------------------------------------------------------------------------

Id = Annotated[str, Field(min_length=1, max_length=100)]


class LineIn(StrictModel):
    product_id: Id
    # The 1…100 rule is the domain's (422 INVALID_QUANTITY); this bound only keeps numbers sane.
    quantity: int = Field(ge=-1_000_000, le=1_000_000)


class PrecheckBody(StrictModel):
    items: list[LineIn] = Field(max_length=100)


class PlaceBody(StrictModel):
    items: list[LineIn] = Field(max_length=100)
    address_id: Id | None = None
    payment_method_id: Id | None = None
    promo_code: Annotated[str, Field(min_length=1, max_length=64)] | None = None


class DecisionBody(StrictModel):
    accept: bool


class RetryBody(StrictModel):
    payment_method_id: Id | None = None


class ReasonBody(StrictModel):
    reason: str = Field(min_length=1, max_length=500)


class CancelBody(StrictModel):
    reason: str | None = Field(None, max_length=500)


class ReturnBody(StrictModel):
    # The quantity bounds are the domain's (what was delivered less earlier returns).
    items: list[LineIn] = Field(min_length=1, max_length=100)
    reason: str = Field(min_length=1, max_length=500)


# --- responses --------------------------------------------------------------------------------


class PrecheckLine(ResponseModel):
    product_id: str
    requested: int
    available: int
    status: Literal["available", "partial", "unavailable"]
    alternatives: list[str]


class PrecheckOut(ResponseModel):
    ready: bool
    profile_complete: bool
    missing: list[str]
    items: list[PrecheckLine]
    default_address_id: str | None
    preferred_payment_method_id: str | None
    prompt_profile_completion: bool


class Placed(ResponseModel):
    order_id: str
    status: Status


class LineOut(ResponseModel):
    product_id: str
    name: str
    quantity: int
    price_cents: int
    fulfilled_quantity: int | None


class PaymentOut(ResponseModel):
    status: str
    payment_id: str | None
    attempts: int
    last_error: str | None
    payment_method_id: str


class FlagsOut(ResponseModel):
    partial_fulfillment: bool
    fraud_flag: bool


class AuditOut(ResponseModel):
    at: datetime
    action: str
    from_status: Status | None
    to_status: Status
    user_id: str | None
    role: str
    ip: str | None
    device: str | None
    region: str | None
    return_id: str | None = None
    return_status: ReturnStatus | None = None


class FulfilmentOut(ResponseModel):
    status: FulfilmentStatus
    shipment_id: str
    carrier: str | None
    tracking_number: str | None
    shipped_at: datetime | None
    delivered_at: datetime | None


class ReturnLineOut(ResponseModel):
    product_id: str
    quantity: int


class ReturnOut(ResponseModel):
    return_id: str
    order_id: str
    user_id: str
    status: ReturnStatus
    items: list[ReturnLineOut]
    refund_cents: int
    currency: str
    reason: str
    created_at: datetime
    updated_at: datetime
    decided_by: str | None
    decision_reason: str | None
    approved_at: datetime | None
    rejected_at: datetime | None
    rejection_reason: str | None
    received_at: datetime | None
    received_by: str | None
    refunded_at: datetime | None
    refunded_cents: int
    failure_reason: str | None
    restocked_at: datetime | None
    # The end of the return's current wait (APPROVED: the parcel; RECEIVED: the refund).
    due_at: datetime | None


class ReturnsOut(ResponseModel):
    items: list[ReturnOut]


class OrderSummary(ResponseModel):
    order_id: str
    user_id: str
    status: Status
    items: list[LineOut]
    subtotal_cents: int
    discount_cents: int
    total_cents: int
    currency: str
    flags: FlagsOut
    created_at: datetime
    updated_at: datetime


class OrderOut(OrderSummary):
    address_id: str
    address: dict[str, Any] | None
    payment: PaymentOut
    promo_code: str | None
    approval_reason: str | None
    rejection_reason: str | None
    cancel_reason: str | None
    alternatives: list[str]
    missing: list[dict[str, Any]]
    reservation_expires_at: datetime | None
    deadline: datetime | None
    fulfilment: FulfilmentOut | None
    returns: list[ReturnOut]
    refunded_cents: int
    audit_logs: list[AuditOut]


class TimelineItem(ResponseModel):
    at: datetime
    step: str
    service: str
    event_type: str | None
    event_id: str | None
    detail: dict[str, Any]


class Timeline(ResponseModel):
    items: list[TimelineItem]


def lines_of(items: list[LineIn]) -> tuple[tuple[str, int], ...]:
    """A body's lines as the commands take them: (product id, quantity)."""
    return tuple((line.product_id, line.quantity) for line in items)


def summary_of(order: Order) -> dict[str, Any]:
    return {
        "order_id": order.order_id,
        "user_id": order.user_id,
        "status": order.status,
        "items": [LineOut.model_validate(line) for line in order.items],
        "subtotal_cents": order.subtotal_cents,
        "discount_cents": order.discount_cents,
        "total_cents": order.total_cents,
        "currency": order.currency,
        "flags": FlagsOut(
            partial_fulfillment=order.partial_fulfillment, fraud_flag=order.fraud_flag
        ),
        "created_at": order.created_at,
        "updated_at": order.updated_at,
    }


def view(order: Order) -> OrderOut:
    """An order as `GET /orders/{orderId}` and the changes answer it."""
    payment = order.payment
    return OrderOut(
        **summary_of(order),
        address_id=order.address_id,
        address=order.address,
        payment=PaymentOut(
            status=payment.status,
            payment_id=payment.payment_id,
            attempts=payment.attempts,
            last_error=payment.last_error,
            payment_method_id=payment.method_id,
        ),
        promo_code=order.promo_code,
        approval_reason=order.approval_reason,
        rejection_reason=order.rejection_reason,
        cancel_reason=order.cancel_reason,
        alternatives=order.alternatives,
        missing=order.missing,
        reservation_expires_at=order.reservation_expires_at,
        deadline=order.deadline,
        fulfilment=FulfilmentOut.model_validate(order.fulfilment) if order.fulfilment else None,
        returns=returns_of(order),
        refunded_cents=order.refunded_cents,
        audit_logs=[AuditOut.model_validate(entry) for entry in order.audit_logs],
    )


def return_view(order_id: str, user_id: str, currency: str, ret: OrderReturn) -> ReturnOut:
    """A return as its order, the order's returns and the returns queue show it."""
    return ReturnOut(
        **ret.model_dump(exclude={"items", "due", "requested_by", "request_key", "refund_id"}),
        items=[ReturnLineOut(product_id=i.product_id, quantity=i.quantity) for i in ret.items],
        order_id=order_id,
        user_id=user_id,
        currency=currency,
        due_at=ret.due,
    )


def returns_of(order: Order) -> list[ReturnOut]:
    """An order's returns, oldest first."""
    return [return_view(order.order_id, order.user_id, order.currency, r) for r in order.returns]


def precheck_view(outcome: Precheck) -> PrecheckOut:
    """The pre-order check's answer."""
    return PrecheckOut(
        ready=outcome.ready,
        profile_complete=outcome.profile_complete,
        missing=outcome.missing,
        items=[
            PrecheckLine(
                product_id=a.product_id,
                requested=a.requested,
                available=a.available,
                status=a.status,
                alternatives=list(a.alternatives),
            )
            for a in outcome.items
        ],
        default_address_id=outcome.default_address_id,
        preferred_payment_method_id=outcome.preferred_payment_method_id,
        prompt_profile_completion=outcome.prompt_profile_completion,
    )
