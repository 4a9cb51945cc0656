"""Events emitted by the order service."""

from __future__ import annotations

from contracts.base import Event
from contracts.registry import event
from contracts.types import Line, PricedLine


@event("order")
class OrderPlaced(Event):
    order_id: str
    user_id: str
    items: tuple[PricedLine, ...]
    total_cents: int
    currency: str = "USD"
    address_id: str
    payment_method_id: str
    promo_code: str | None = None


@event("order")
class OrderPaid(Event):
    order_id: str
    lines: tuple[Line, ...]
    payment_id: str
