"""The pure rules of returns: what can still be sent back, what a return refunds, and when the
window closes.

Money: a return's gross is `Σ priceCents × quantity` of its lines at the order's prices; it
refunds that gross less the order's promotion discount in the same proportion, rounded down to
the cent: `gross × totalCents // subtotalCents`. The return that sends back the last delivered
unit refunds what is left of the order's total instead, so an order returned whole (in one return
or several) refunds exactly what was captured, never a cent more: each refund is also capped by
the total less what the order's earlier, not rejected, returns claimed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta

from order_service.domain.errors import (
    EmptyReturn,
    InvalidQuantity,
    ReturnQuantityExceeded,
    UnknownProduct,
)
from order_service.domain.records import OrderReturn
from order_service.domain.status import RETURN_CLAIMS


def merge_lines(items: Sequence[tuple[str, int]]) -> dict[str, int]:
    """The asked quantities per product (duplicate lines summed); every quantity at least 1."""
    if not items:
        raise EmptyReturn()
    merged: dict[str, int] = {}
    for product_id, quantity in items:
        if quantity < 1:
            raise InvalidQuantity(product_id, quantity)
        merged[product_id] = merged.get(product_id, 0) + quantity
    return merged


def returnable(delivered: Mapping[str, int], returns: Iterable[OrderReturn]) -> dict[str, int]:
    """Units per product that can still be returned: delivered less what the earlier returns
    claim (all but the REJECTED ones)."""
    left = dict(delivered)
    for earlier in returns:
        if earlier.status in RETURN_CLAIMS:
            for line in earlier.items:
                left[line.product_id] = left.get(line.product_id, 0) - line.quantity
    return left


def check_quantities(asked: Mapping[str, int], left: Mapping[str, int]) -> None:
    """Every asked product was delivered, and no more units than are left are asked back."""
    for product_id, quantity in asked.items():
        if product_id not in left:
            raise UnknownProduct(product_id)
        if quantity > left[product_id]:
            raise ReturnQuantityExceeded(product_id, quantity, max(left[product_id], 0))


def refund_for(
    gross_cents: int,
    *,
    subtotal_cents: int,
    total_cents: int,
    claimed_cents: int,
    completes: bool,
) -> int:
    """What a return of `gross_cents` (at the order's prices) refunds.

    `claimed_cents` is what the order's earlier, not rejected, returns refund; `completes` says
    that this return sends back the last delivered unit.
    """
    left = max(total_cents - claimed_cents, 0)
    if completes:
        return left
    if subtotal_cents <= 0:
        return 0
    return min(gross_cents * total_cents // subtotal_cents, left)


def window_closes(delivered_at: datetime, window: timedelta) -> datetime:
    """The last moment a return may be asked for."""
    return delivered_at + window


def claimed_cents(returns: Iterable[OrderReturn]) -> int:
    """What the returns that claim their units refund (or will)."""
    return sum(r.refund_cents for r in returns if r.status in RETURN_CLAIMS)
