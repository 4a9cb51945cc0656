"""Value types shared by several events."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from contracts.base import ContractModel

UserRole = Literal["Customer", "Manager", "Admin"]
Service = Literal[
    "gateway", "user", "inventory", "order", "payment", "shipping", "notify", "analytics"
]
Channel = Literal["email", "sms", "push", "inApp"]
PartialFulfillment = Literal["ask", "accept", "cancel"]
NotificationType = Literal[
    "WELCOME",
    "PROFILE_INCOMPLETE",
    "ORDER_PLACED",
    "ORDER_DECISION_REQUIRED",
    "ORDER_CONFIRMED",
    "ORDER_REJECTED",
    "ORDER_CANCELLED",
    "PAYMENT_FAILED",
    "PROMOTION_GRANTED",
    "APPROVAL_REQUIRED",
    "LOW_STOCK",
    "ORDER_SHIPPED",
    "ORDER_DELIVERED",
    "RETURN_REQUESTED",
    "RETURN_APPROVED",
    "RETURN_REJECTED",
    "REFUND_ISSUED",
]


class Line(ContractModel):
    """A quantity of one product."""

    product_id: str
    quantity: int = Field(ge=0)


class PricedLine(Line):
    """A line with the unit price the order was placed at."""

    price_cents: int = Field(ge=0)


class MissingLine(ContractModel):
    """A line inventory could not (fully) reserve: how many were asked for, how many are left."""

    product_id: str
    requested: int = Field(ge=0)
    available: int = Field(ge=0)


class Address(ContractModel):
    """A delivery address of a user's profile."""

    address_id: str
    label: str | None = None
    line1: str
    line2: str | None = None
    city: str
    state: str | None = None
    zip: str
    country: str
    is_default: bool = False


class PaymentMethodSummary(ContractModel):
    """A stored payment method without its secrets (never the provider token)."""

    payment_method_id: str
    type: str
    brand: str | None = None
    last4: str | None = None
    is_default: bool = False


class Preferences(ContractModel):
    """A user's preferences; `partial_fulfillment` decides what order does with a partial stock."""

    delivery_time: str | None = None
    payment_method: str | None = None
    newsletter_opt_in: bool = False
    notification_channels: tuple[Channel, ...] = ()
    partial_fulfillment: PartialFulfillment = "ask"
