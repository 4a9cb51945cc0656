"""Pure rules of the analytics service (no I/O, no framework imports).

- the audit entry of an event (who, what, when, where, outcome, entity);
- the per-order fact an order's events fold into (what the sales reports aggregate), a
  report's window and default currency;
- the report maths of what follows the confirmation: refunds in a window (in total, by day, by
  product through the return's lines), times from confirmation to shipment and to delivery
  (count, average, p50, p90), return rates per product;
- the promotion rules (the 3rd confirmed order earns 10 % off the next one);
- the ranking of recommendations from co-purchases, categories and top sellers;
- the text cells of a CSV export, kept from running as spreadsheet formulas.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import datetime, timedelta
from typing import Any

from contracts import Envelope, Event
from contracts.gateway import AccessDenied, DeadLettersRedriven
from contracts.inventory import StockPartiallyReserved
from contracts.order import (
    OrderApprovalRequired,
    OrderCancelled,
    OrderConfirmed,
    OrderPlaced,
    OrderRejected,
    ReturnReceived,
    ReturnRequested,
)
from contracts.payment import PaymentAuthorized, PaymentFailed, PaymentRefunded
from contracts.shipping import ShipmentDelivered, ShipmentDispatched
from contracts.user import UserLoggedIn, UserRegistered

TERMINAL = frozenset({"CONFIRMED", "REJECTED", "CANCELLED"})

# -- audit ---------------------------------------------------------------------------------------

# Fields that name the entity an event is about, most specific first.
_ENTITY_FIELDS = (
    ("order_id", "order"),
    ("product_id", "product"),
    ("notification_id", "notification"),
    ("code", "promotion"),
    ("user_id", "user"),
)


def entity_of(data: Event) -> tuple[str | None, str | None]:
    """(entity type, entity id) an event is about."""
    if isinstance(data, AccessDenied):
        return "endpoint", f"{data.method} {data.path}"
    if isinstance(data, DeadLettersRedriven):
        return "queue", data.service
    for field, kind in _ENTITY_FIELDS:
        value = getattr(data, field, None)
        if isinstance(value, str):
            return kind, value
    return None, None


def outcome_of(data: Event) -> str:
    """`denied` for refused access, `failed` for failures, else `ok`."""
    if isinstance(data, AccessDenied):
        return "denied"
    if type(data).__name__.endswith("Failed"):
        return "failed"
    return "ok"


def audit_entry(envelope: Envelope[Event]) -> dict[str, Any]:
    """The audit row of an event (its id is the event's: a redelivery cannot add a second)."""
    data = envelope.data
    actor = envelope.actor.model_dump()
    if actor["user_id"] is None and isinstance(data, UserRegistered | UserLoggedIn):
        # Self sign-up and login happen before the caller has a token: the user is the actor.
        actor["user_id"] = data.user_id
        actor["role"] = getattr(data, "role", None) or actor["role"]
    entity_type, entity_id = entity_of(data)
    return {
        "_id": envelope.id,
        "at": envelope.occurred_at,
        "action": envelope.type,
        "entity_type": entity_type,
        "entity_id": entity_id,
        "outcome": outcome_of(data),
        "actor": actor,
        "correlation_id": envelope.correlation_id,
        "source": envelope.source,
    }


# -- order facts ---------------------------------------------------------------------------------

ORDER_EVENTS: tuple[type[Event], ...] = (
    OrderPlaced,
    StockPartiallyReserved,
    OrderApprovalRequired,
    PaymentFailed,
    PaymentAuthorized,
    OrderConfirmed,
    OrderRejected,
    OrderCancelled,
    # After CONFIRMED: what the fulfilment figures, refunds and return rates need (the other
    # fulfilment events, ShipmentCreated, ReturnApproved/Rejected, StockReturned and
    # PaymentRefundFailed, are stored and audited only: no projection write for them).
    ShipmentDispatched,
    ShipmentDelivered,
    ReturnRequested,
    ReturnReceived,
    PaymentRefunded,
)


def _lines(lines: Iterable[Any]) -> list[dict[str, Any]]:
    return [{"product_id": line.product_id, "quantity": line.quantity} for line in lines]


def _entry(entries: list[dict[str, Any]], key: str, value: str) -> dict[str, Any]:
    """The entry of a fact's list (`returns`, `refunds`) whose `key` is `value`, added if new."""
    for entry in entries:
        if entry.get(key) == value:
            return entry
    entries.append({key: value})
    return entries[-1]


def _fold_after_confirmation(out: dict[str, Any], envelope: Envelope[Event]) -> None:
    """Shipment times, the returns' lines and the refunds, each kept once whatever the order
    (a return's received lines win over its requested ones; a refund is keyed by its return,
    so one return never counts two refunds)."""
    data = envelope.data
    at = envelope.occurred_at
    match data:
        case ShipmentDispatched():
            out["shipment_id"] = data.shipment_id
            out["shipped_at"] = data.shipped_at
        case ShipmentDelivered():
            out["shipment_id"] = data.shipment_id
            out["delivered_at"] = data.delivered_at
        case ReturnRequested():
            entry = _entry(out.setdefault("returns", []), "return_id", data.return_id)
            entry.setdefault("lines", _lines(data.lines))
            entry["requested_at"] = at
        case ReturnReceived():
            entry = _entry(out.setdefault("returns", []), "return_id", data.return_id)
            entry["lines"] = _lines(data.lines)
            entry["received_at"] = at
        case PaymentRefunded():
            key = data.return_id or envelope.id
            entry = _entry(out.setdefault("refunds", []), "key", key)
            entry.update(
                return_id=data.return_id,
                amount_cents=data.amount_cents,
                currency=data.currency,
                at=at,
            )


def _items(items: Iterable[Any]) -> list[dict[str, Any]]:
    return [
        {"product_id": i.product_id, "quantity": i.quantity, "price_cents": i.price_cents}
        for i in items
    ]


def allocate(items: list[dict[str, Any]], total_cents: int) -> list[dict[str, Any]]:
    """Each line's `revenue_cents`: its share of `total_cents` (what the order was charged,
    after any discount), by list value, largest remainders first, so the lines sum to it."""
    values = [i["quantity"] * i["price_cents"] for i in items]
    subtotal = sum(values)
    if not subtotal:
        return [{**i, "revenue_cents": 0} for i in items]
    shares = [v * total_cents // subtotal for v in values]
    left = total_cents - sum(shares)
    by_remainder = sorted(
        range(len(items)), key=lambda n: (-(values[n] * total_cents % subtotal), n)
    )
    for n in by_remainder[:left]:
        shares[n] += 1
    return [{**item, "revenue_cents": share} for item, share in zip(items, shares, strict=True)]


def fold_order(fact: Mapping[str, Any] | None, envelope: Envelope[Event]) -> dict[str, Any]:
    """The order's fact after one more of its events; events may come in any order."""
    data = envelope.data
    at = envelope.occurred_at
    out: dict[str, Any] = dict(fact or {})
    out.setdefault("_id", getattr(data, "order_id"))  # noqa: B009 - every order event has one
    out.setdefault("status", "PENDING")
    out.setdefault("placed_at", at)
    out.setdefault("partial", False)
    out.setdefault("payment_failed", False)
    out.setdefault("revenue_cents", 0)
    out.setdefault("items", [])
    out.setdefault("total_cents", 0)
    if isinstance(data, OrderPlaced | OrderConfirmed | OrderApprovalRequired):
        out["currency"] = data.currency
    user_id = getattr(data, "user_id", None)
    if user_id:
        out["user_id"] = user_id

    def move(status: str) -> None:
        if out["status"] not in TERMINAL:
            out["status"] = status

    match data:
        case OrderPlaced():
            out["placed_at"] = at  # the order's own time wins over an earlier-seen event's
            if not out["items"] or out["status"] != "CONFIRMED":
                out["items"] = _items(data.items)
                out["total_cents"] = data.total_cents
            out["promo_code"] = data.promo_code
        case StockPartiallyReserved():
            out["partial"] = True
            move("AWAITING_CUSTOMER_DECISION")
        case OrderApprovalRequired():
            move("AWAITING_APPROVAL")
        case PaymentFailed():
            out["payment_failed"] = True
            move("PAYMENT_FAILED")
        case PaymentAuthorized():
            move("PAID")
        case OrderConfirmed():
            out["status"] = "CONFIRMED"
            # What was confirmed (a partial order is recomputed for what is fulfilled), each
            # line with its share of what was charged (a promotion's discount included).
            out["items"] = allocate(_items(data.items), data.total_cents)
            out["total_cents"] = data.total_cents
            out["revenue_cents"] = data.total_cents
            out["partial"] = out["partial"] or data.partial_fulfillment
            out["confirmed_at"] = at
        case OrderRejected():
            move("REJECTED")
        case OrderCancelled():
            move("CANCELLED")
        case _:
            _fold_after_confirmation(out, envelope)
    out["day"] = out["placed_at"].date().isoformat()
    out["updated_at"] = at
    return out


# -- reports ------------------------------------------------------------------------------------

TOP_PRODUCTS = 5
# The currency of a report by default, and of an order fact that names none (only its later
# events seen so far, or folded before currencies were kept), as of the order itself.
DEFAULT_CURRENCY = "USD"


@dataclass(frozen=True, slots=True)
class Window:
    """A report's time window."""

    start: datetime  # inclusive
    end: datetime  # exclusive


def in_currency(currency_of: str | None, currency: str) -> bool:
    """Whether an amount (an order, a refund) belongs to a report in `currency` (none: USD)."""
    return (currency_of or DEFAULT_CURRENCY) == currency


def _in(window: Window, at: datetime | None) -> bool:
    return at is not None and window.start <= at < window.end


# A refund whose lines and order are both unknown (its order was never seen) still counts.
UNATTRIBUTED = "(unattributed)"


@dataclass(frozen=True, slots=True)
class Refunds:
    """The refunds issued in a window: in total, by day (UTC) and by product."""

    total_cents: int = 0
    by_day: dict[str, int] = dataclass_field(default_factory=dict)
    by_product: dict[str, int] = dataclass_field(default_factory=dict)


def _refunded_lines(fact: Mapping[str, Any], refund: Mapping[str, Any]) -> list[dict[str, Any]]:
    """What a refund pays back: its return's lines (received, else requested), or for a refund
    of no known return the order's lines; each with the product's list price in the order."""
    items = fact.get("items") or []
    prices = {i["product_id"]: i.get("price_cents", 0) for i in items}
    returned = next(
        (
            r
            for r in fact.get("returns") or []
            if refund.get("return_id") and r.get("return_id") == refund["return_id"]
        ),
        None,
    )
    source = (returned or {}).get("lines") or items
    lines = [
        {
            "product_id": line["product_id"],
            "quantity": line["quantity"],
            "price_cents": prices.get(line["product_id"], 0),
        }
        for line in source
    ]
    if not any(line["quantity"] * line["price_cents"] for line in lines):
        lines = [{**line, "price_cents": 1} for line in lines]  # no prices known: by units
    return [line for line in lines if line["quantity"]]


def refund_by_product(fact: Mapping[str, Any], refund: Mapping[str, Any]) -> dict[str, int]:
    """A refund's amount spread over the products it pays back, in proportion to their list
    value (quantity × the order's unit price), largest remainders first: the shares add up to
    the amount (`allocate`, as the order's revenue is spread). The order service computed the
    refund the same way (list value less the promotion's share), so a one-product return is
    attributed whole to that product."""
    amount = int(refund.get("amount_cents", 0))
    lines = _refunded_lines(fact, refund)
    if not lines:
        return {UNATTRIBUTED: amount}
    shares: Counter[str] = Counter()
    for line in allocate(lines, amount):
        shares[line["product_id"]] += line["revenue_cents"]
    return dict(shares)


def refunds_in(facts: Iterable[Mapping[str, Any]], window: Window, currency: str) -> Refunds:
    """The refunds in `currency` whose event time is in the window (api.md: "refunds issued in
    the window", whenever their orders were placed), in total, by day and by product."""
    total = 0
    by_day: Counter[str] = Counter()
    by_product: Counter[str] = Counter()
    for fact in facts:
        for refund in fact.get("refunds") or []:
            at = refund.get("at")
            if not _in(window, at) or not in_currency(refund.get("currency"), currency):
                continue
            amount = int(refund.get("amount_cents", 0))
            total += amount
            by_day[at.date().isoformat()] += amount
            by_product.update(refund_by_product(fact, refund))
    return Refunds(total, dict(by_day), dict(by_product))


def with_refunds(
    groups: Sequence[Mapping[str, Any]], refunds: Mapping[str, int], *, sort: bool
) -> list[dict[str, Any]]:
    """The groups with their `refunds_cents` and `net_revenue_cents` (revenue − refunds); a key
    with refunds and no sales in the window (a day, a product sold earlier) is a group with no
    orders, so the groups add up to the report's totals. `sort`: by key (days), else the
    groups' order, then the new keys by key."""
    out = [{**g, "refunds_cents": refunds.get(g["key"], 0)} for g in groups]
    known = {g["key"] for g in groups}
    out += [
        {"key": key, "orders": 0, "revenue_cents": 0, "refunds_cents": cents}
        for key, cents in sorted(refunds.items())
        if key not in known
    ]
    for g in out:
        g["net_revenue_cents"] = g["revenue_cents"] - g["refunds_cents"]
    return sorted(out, key=lambda g: g["key"]) if sort else out


@dataclass(frozen=True, slots=True)
class DurationStats:
    """Seconds from an order's confirmation to a fulfilment step, over the window's shipments
    (None when there are none)."""

    count: int = 0
    average_seconds: float | None = None
    p50_seconds: float | None = None
    p90_seconds: float | None = None


def percentile(ordered: Sequence[float], p: float) -> float:
    """The nearest-rank percentile of sorted values (p in 0..100; at least one value)."""
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def duration_stats(seconds: Iterable[float]) -> DurationStats:
    ordered = sorted(seconds)
    if not ordered:
        return DurationStats()
    return DurationStats(
        count=len(ordered),
        average_seconds=round(sum(ordered) / len(ordered), 3),
        p50_seconds=round(percentile(ordered, 50), 3),
        p90_seconds=round(percentile(ordered, 90), 3),
    )


def fulfilment_times(
    facts: Iterable[Mapping[str, Any]], window: Window, currency: str
) -> tuple[DurationStats, DurationStats]:
    """Confirmation → shipment over the orders shipped in the window, confirmation → delivery
    over those delivered in it (the carrier's times; orders in `currency` whose confirmation
    is known; a step stamped before its confirmation, clocks apart, counts as 0)."""
    to_ship: list[float] = []
    to_deliver: list[float] = []
    for fact in facts:
        confirmed = fact.get("confirmed_at")
        if confirmed is None or not in_currency(fact.get("currency"), currency):
            continue
        for step, found in (("shipped_at", to_ship), ("delivered_at", to_deliver)):
            at = fact.get(step)
            if _in(window, at):
                found.append(max(0.0, (at - confirmed).total_seconds()))
    return duration_stats(to_ship), duration_stats(to_deliver)


def return_rates(sold: Mapping[str, int], returned: Mapping[str, int]) -> list[dict[str, Any]]:
    """Per product sold: units returned (received) / units sold, the highest rate first."""
    rows = [
        {
            "product_id": product_id,
            "sold": units,
            "returned": returned.get(product_id, 0),
            "rate": rate(returned.get(product_id, 0), units),
        }
        for product_id, units in sold.items()
        if units
    ]
    return sorted(rows, key=lambda r: (-r["rate"], -r["returned"], r["product_id"]))


# -- promotions ----------------------------------------------------------------------------------

LOYALTY_ORDERS = 3
LOYALTY_PERCENT = 10
LOYALTY_VALIDITY = timedelta(days=30)


@dataclass(frozen=True, slots=True)
class Grant:
    """A promotion to grant: code, percentage, expiry, why."""

    rule: str
    code: str
    percent_off: int
    expires_at: datetime
    reason: str


def promotion_code(user_id: str, rule: str) -> str:
    """A stable code per (user, rule): a rule re-evaluated never mints a second code."""
    digest = hashlib.sha256(f"{rule}:{user_id}".encode()).hexdigest()[:10].upper()
    return f"{rule.upper()}-{digest}"


def loyalty_grant(
    user_id: str, confirmed_orders: int, granted_rules: Iterable[str], now: datetime
) -> Grant | None:
    """The 3rd confirmed order earns 10 % off the next one (once per user)."""
    rule = "loyal3"
    if confirmed_orders < LOYALTY_ORDERS or rule in set(granted_rules):
        return None
    return Grant(
        rule=rule,
        code=promotion_code(user_id, rule),
        percent_off=LOYALTY_PERCENT,
        expires_at=now + LOYALTY_VALIDITY,
        reason=f"{LOYALTY_ORDERS} confirmed orders",
    )


WINBACK_PERCENT = 15
WINBACK_VALIDITY = timedelta(days=14)


def winback_grant(
    user_id: str,
    last_active_at: datetime | None,
    confirmed_orders: int,
    granted_rules: Iterable[str],
    now: datetime,
    inactive_for: timedelta,
) -> Grant | None:
    """A customer who bought before and has been inactive for `inactive_for` gets a code, once."""
    rule = "winback"
    if confirmed_orders < 1 or last_active_at is None or rule in set(granted_rules):
        return None
    if now - last_active_at < inactive_for:
        return None
    return Grant(
        rule=rule,
        code=promotion_code(user_id, rule),
        percent_off=WINBACK_PERCENT,
        expires_at=now + WINBACK_VALIDITY,
        reason=f"inactive for {inactive_for.days} days",
    )


# -- recommendations -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Recommendation:
    product_id: str
    reason: str


def recommend(
    *,
    bought: Mapping[str, int],
    co_purchased: Mapping[str, int],
    same_category: Iterable[str],
    top_sellers: Iterable[str],
    catalogue: Iterable[str] = (),
    buyable: set[str],
    limit: int = 10,
) -> list[Recommendation]:
    """Bought together first, then the user's categories, then top sellers, then the catalogue.

    Never a product the user cannot buy (`buyable`: known, not deleted, in stock) or one they
    already bought repeatedly; a product bought once may come back through its category.
    """
    out: list[Recommendation] = []
    seen: set[str] = set()

    def add(product_id: str, reason: str) -> None:
        if product_id in seen or product_id not in buyable or bought.get(product_id, 0) >= 2:
            return
        seen.add(product_id)
        out.append(Recommendation(product_id, reason))

    for product_id, _ in sorted(co_purchased.items(), key=lambda kv: (-kv[1], kv[0])):
        if product_id not in bought:
            add(product_id, "boughtTogether")
    for product_id in same_category:
        add(product_id, "sameCategory")
    for product_id in top_sellers:
        add(product_id, "topSeller")
    for product_id in catalogue:  # nothing sold yet: still show something buyable
        add(product_id, "catalogue")
    return out[:limit]


def rate(part: int, whole: int) -> float:
    """part / whole rounded to 4 places; 0 when there is nothing to divide."""
    return round(part / whole, 4) if whole else 0.0


# A spreadsheet opening a CSV runs a cell starting with one of these as a formula (OWASP, CSV
# injection): `=HYPERLINK(...)` in a product id would send a Manager's sheet to anyone's server.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(cell: str) -> str:
    """A text cell a spreadsheet shows as text: a leading quote before a formula start."""
    return f"'{cell}" if cell.startswith(_FORMULA_STARTS) else cell
