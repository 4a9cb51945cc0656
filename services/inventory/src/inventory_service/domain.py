"""Pure rules of the inventory service (no I/O, no framework imports).

The stock arithmetic that keeps `available + reserved + committed == received` (a received
return moves its units from committed back to available: `committed` is what was sold less what
came back, `returned` counts what came back), the outcome of a
reservation for an order (all, some or none of its lines, with quantities), the ranking of
alternatives for what is out of stock, low-stock crossings, reservation status transitions, and
what a new product is (`NewProduct`, its opening-stock ledger row).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

MAX_ALTERNATIVES = 3
DEFAULT_LOW_STOCK_THRESHOLD = 5

ReservationStatus = Literal["reserved", "unavailable", "released", "committed", "commitFailed"]
OutcomeKind = Literal["all", "partial", "none"]
LowStockChange = Literal["crossed", "recovered"]
ReleaseReason = Literal["cancelled", "rejected", "expired", "paymentFailed"]


class ProductNotFound(Exception):
    """No live product has this id."""

    def __init__(self, product_id: str) -> None:
        super().__init__(f"product {product_id} not found")
        self.product_id = product_id


class InsufficientStock(Exception):
    """A stock change would take `available` below zero."""

    def __init__(self, product_id: str, available: int, delta: int) -> None:
        super().__init__(f"product {product_id}: available {available}, change {delta}")
        self.product_id = product_id
        self.available = available
        self.delta = delta


@dataclass(frozen=True, slots=True)
class Stock:
    """A product's stock counters; every change keeps the conservation equation."""

    received: int = 0
    available: int = 0
    reserved: int = 0
    committed: int = 0

    @property
    def conserved(self) -> bool:
        """True when no unit appeared or vanished and no counter is negative."""
        counters = (self.received, self.available, self.reserved, self.committed)
        return (
            all(c >= 0 for c in counters)
            and self.available + self.reserved + self.committed == self.received
        )

    def adjust(self, product_id: str, delta: int) -> Stock:
        """Receive (`delta > 0`) or write off (`delta < 0`) units; only available ones go."""
        if self.available + delta < 0:
            raise InsufficientStock(product_id, self.available, delta)
        return Stock(self.received + delta, self.available + delta, self.reserved, self.committed)

    def take_back(self, product_id: str, quantity: int) -> Stock:
        """A received return: `quantity` sold units go from committed back to available (the
        equation unchanged); never more than is committed."""
        if not 0 <= quantity <= self.committed:
            raise InsufficientStock(product_id, self.committed, -quantity)
        return Stock(
            self.received, self.available + quantity, self.reserved, self.committed - quantity
        )


@dataclass(frozen=True, slots=True)
class NewProduct:
    """What an Admin (or the demo seed) gives to create a product."""

    name: str
    description: str
    category: str
    price_cents: int
    stock_count: int
    currency: str = "USD"
    low_stock_threshold: int = DEFAULT_LOW_STOCK_THRESHOLD


@dataclass(frozen=True, slots=True)
class LineRequest:
    """A quantity of one product an order asks for."""

    product_id: str
    quantity: int


@dataclass(frozen=True, slots=True)
class LineResult:
    """What reserving one line gave: how many were asked, taken, and were available before."""

    product_id: str
    requested: int
    taken: int
    available: int


@dataclass(frozen=True, slots=True)
class Outcome:
    """An order's reservation outcome: all lines, some (with quantities) or none."""

    kind: OutcomeKind
    reserved: tuple[LineRequest, ...] = ()
    missing: tuple[LineResult, ...] = ()


def merge_lines(lines: Iterable[tuple[str, int]]) -> list[LineRequest]:
    """One request per product (an order listing a product twice asks for the sum), in order."""
    totals: dict[str, int] = {}
    for product_id, quantity in lines:
        if quantity > 0:
            totals[product_id] = totals.get(product_id, 0) + quantity
    return [LineRequest(p, q) for p, q in totals.items()]


def portion(requested: int, available: int) -> int:
    """How many of `requested` can be taken from `available` (a partial take is allowed)."""
    return max(0, min(requested, available))


def decide_outcome(results: Sequence[LineResult]) -> Outcome:
    """All lines fully taken → all; something taken → partial; nothing → none."""
    reserved = tuple(LineRequest(r.product_id, r.taken) for r in results if r.taken > 0)
    missing = tuple(r for r in results if r.taken < r.requested)
    if not missing:
        return Outcome("all", reserved=reserved)
    if reserved:
        return Outcome("partial", reserved=reserved, missing=missing)
    return Outcome("none", missing=missing)


def availability_status(
    requested: int, available: int
) -> Literal["available", "partial", "unavailable"]:
    """The pre-order check's word for one line."""
    if available >= requested:
        return "available"
    return "partial" if available > 0 else "unavailable"


@dataclass(frozen=True, slots=True)
class Candidate:
    """A product that might replace one out of stock."""

    product_id: str
    price_cents: int
    available: int


def rank_alternatives(
    price_cents: int,
    candidates: Iterable[Candidate],
    *,
    exclude: Iterable[str] = (),
    limit: int = MAX_ALTERNATIVES,
) -> list[str]:
    """In-stock candidates, closest price first (cheaper wins a tie, then id), at most `limit`."""
    excluded = set(exclude)
    usable = [c for c in candidates if c.available > 0 and c.product_id not in excluded]
    usable.sort(key=lambda c: (abs(c.price_cents - price_cents), c.price_cents, c.product_id))
    return [c.product_id for c in usable[:limit]]


def low_stock_change(available: int, threshold: int, flagged: bool) -> LowStockChange | None:
    """`crossed` when stock falls to the threshold unflagged, `recovered` when it rises above."""
    low = available <= threshold
    if low and not flagged:
        return "crossed"
    if not low and flagged:
        return "recovered"
    return None


def expiry(now: datetime, ttl_seconds: float) -> datetime:
    """When a reservation made at `now` lapses."""
    return now + timedelta(seconds=ttl_seconds)


# Why an order's stock goes back, by the reason of its `OrderCancelled` (else "cancelled").
CANCEL_RELEASE_REASONS: dict[str, ReleaseReason] = {
    "PAYMENT_FAILED": "paymentFailed",
    "PAYMENT_TIMEOUT": "paymentFailed",
}


def release_reason(cancel_reason: str) -> ReleaseReason:
    """The release reason of a cancelled order's stock."""
    return CANCEL_RELEASE_REASONS.get(cancel_reason, "cancelled")


# Status transitions: only a held reservation can be released or committed; everything else is a
# duplicate or a late event and changes nothing.
RELEASABLE: tuple[ReservationStatus, ...] = ("reserved",)
COMMITTABLE: tuple[ReservationStatus, ...] = ("reserved",)


@dataclass(slots=True)
class Ledger:
    """Ledger rows an operation produces, one per counter change of a product."""

    rows: list[dict[str, object]] = field(default_factory=list)

    def record(
        self,
        product_id: str,
        *,
        reason: str,
        at: datetime,
        available: int = 0,
        reserved: int = 0,
        committed: int = 0,
        received: int = 0,
        order_id: str | None = None,
        actor_id: str | None = None,
        return_id: str | None = None,
    ) -> None:
        """Add one row: the counter deltas, why, for which order (and return) or by whom."""
        row: dict[str, object] = {
            "product_id": product_id,
            "delta": {
                "received": received,
                "available": available,
                "reserved": reserved,
                "committed": committed,
            },
            "reason": reason,
            "order_id": order_id,
            "actor_id": actor_id,
            "at": at,
        }
        if return_id is not None:
            row["return_id"] = return_id
        self.rows.append(row)


def opening_stock(
    ledger: Ledger, product_id: str, stock_count: int, actor_id: str | None, now: datetime
) -> None:
    """The ledger row that explains a new product's stock (none when it opens empty)."""
    if stock_count:
        ledger.record(
            product_id,
            reason="opening stock",
            at=now,
            received=stock_count,
            available=stock_count,
            actor_id=actor_id,
        )
