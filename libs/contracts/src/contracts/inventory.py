"""Events emitted by the inventory service."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, Field

from contracts.base import Event
from contracts.registry import event
from contracts.types import Line, MissingLine


class _Product(Event):
    """The product facts that order and analytics replicate."""

    product_id: str
    name: str
    category: str
    price_cents: int = Field(ge=0)
    currency: str = "USD"
    description: str | None = None


@event("inventory")
class ProductCreated(_Product):
    """An Admin added a product to the catalogue."""


@event("inventory")
class ProductUpdated(_Product):
    """An Admin changed a product; carries the product as it now stands."""


@event("inventory")
class ProductDeleted(_Product):
    """An Admin removed a product from the catalogue (soft delete); carries its last state."""


@event("inventory")
class StockReserved(Event):
    """Every line of an order is reserved until `expires_at`."""

    order_id: str
    lines: tuple[Line, ...]
    expires_at: AwareDatetime


@event("inventory")
class StockPartiallyReserved(Event):
    """Some of an order's lines are reserved until `expires_at`; the rest are missing."""

    order_id: str
    user_id: str
    reserved: tuple[Line, ...]
    missing: tuple[MissingLine, ...]
    expires_at: AwareDatetime


@event("inventory")
class StockUnavailable(Event):
    """Nothing of an order could be reserved; nothing is held."""

    order_id: str
    user_id: str
    missing: tuple[MissingLine, ...]
    alternatives: tuple[str, ...] = ()


@event("inventory")
class StockReleased(Event):
    """An order's reservation was given back to available stock."""

    order_id: str
    lines: tuple[Line, ...]
    reason: Literal["cancelled", "rejected", "expired", "paymentFailed"]


@event("inventory")
class StockCommitted(Event):
    """A paid order's reservation became a sale."""

    order_id: str
    lines: tuple[Line, ...]


@event("inventory")
class StockCommitFailed(Event):
    """A paid order's reservation could not be committed (e.g. it had expired)."""

    order_id: str
    reason: str
    lines: tuple[Line, ...] = ()


@event("inventory")
class StockLow(Event):
    """A product's available stock fell to or below its threshold."""

    product_id: str
    name: str
    available: int = Field(ge=0)
    threshold: int = Field(ge=0)


@event("inventory")
class StockAdjusted(Event):
    """An Admin changed a product's stock by `delta` (audit trail; the ledger has the rest)."""

    product_id: str
    delta: int
    reason: str
    available: int = Field(ge=0)


@event("inventory")
class StockReturned(Event):
    """A received return's units are back on sale (a ledger row per line)."""

    return_id: str
    order_id: str
    lines: tuple[Line, ...]
