"""What an order is priced from: catalogue products and the user's promotions (replica facts)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class ProductFacts:
    """What the order needs of a catalogue product (from the replica)."""

    product_id: str
    name: str
    price_cents: int
    currency: str = "USD"
    deleted: bool = False


@dataclass(frozen=True)
class Promotion:
    """A promotion granted to a user (from the replica)."""

    code: str
    user_id: str
    percent_off: int
    expires_at: datetime
    redeemed: bool = False
