"""Request parameters and response models of the analytics service's HTTP API (`api.py`)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Literal

from fastapi import Query
from pydantic import Field

from analytics_service.domain import Window, spreadsheet_safe
from kit.errors import validation_problem
from kit.models import ResponseModel, decode_cursor, invalid_cursor

# A report without `from` covers this long before its `to`.
DEFAULT_WINDOW = timedelta(days=30)

TimeParam = Annotated[str | None, Query(max_length=40, description="RFC 3339 date or date-time")]
IdParam = Annotated[str | None, Query(max_length=200)]


def parse_time(name: str, value: str | None, *, end: bool) -> datetime | None:
    """A date means the whole day (as `to`, up to the end of that day); naive times are UTC."""
    if value is None:
        return None
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            start = datetime.combine(day, time.min, tzinfo=UTC)
            return start + timedelta(days=1) if end else start
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise validation_problem(
            [{"field": name, "message": "Expected an RFC 3339 date or date-time"}]
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def report_window(start: str | None, end: str | None, now: datetime) -> Window:
    """The `from`/`to` of a report: `to` defaults to now, `from` to `DEFAULT_WINDOW` before it."""
    to = parse_time("to", end, end=True) or now
    since = parse_time("from", start, end=False) or to - DEFAULT_WINDOW
    if since >= to:
        raise validation_problem([{"field": "from", "message": "from must be before to"}])
    return Window(since, to)


def audit_position(cursor: str | None) -> tuple[datetime, str] | None:
    """Where a page of the audit trail starts: after `(at, event id)` of the cursor."""
    position = decode_cursor(cursor)
    if position is None:
        return None
    at, last = position.get("at"), position.get("id")
    if not isinstance(at, datetime) or not isinstance(last, str):
        raise invalid_cursor()
    return at, last


# -- reports -------------------------------------------------------------------------------------


class TopProduct(ResponseModel):
    product_id: str
    name: str | None = None
    quantity: int
    revenue_cents: int


class Group(ResponseModel):
    """A day's or a product's sales; its refunds (that day's, or the product's share of each
    refund by the return's lines) and the net of the two. A key with refunds and no sales in
    the window has `orders` 0."""

    key: str
    # Beyond api.md: a product group's name in the catalogue (its current one); null for a day
    # and for a product analytics never heard of.
    name: str | None = None
    orders: int
    revenue_cents: int
    refunds_cents: int
    net_revenue_cents: int


class DurationStats(ResponseModel):
    """Seconds from confirmation to a fulfilment step (nearest-rank percentiles); null when no
    order took that step in the window."""

    count: int
    average_seconds: float | None = None
    p50_seconds: float | None = None
    p90_seconds: float | None = None


class Fulfilment(ResponseModel):
    """Confirmation → shipment over the orders shipped in the window, confirmation → delivery
    over those delivered in it."""

    to_shipment: DurationStats
    to_delivery: DurationStats


class ReturnRate(ResponseModel):
    """Of the window's confirmed orders: units of the product sold, units received back."""

    product_id: str
    name: str | None = None
    sold: int
    returned: int
    rate: float


class SalesReport(ResponseModel):
    """Sales of orders placed in the window; revenue counts CONFIRMED orders only."""

    from_: datetime = Field(alias="from")
    to: datetime
    currency: str
    # Every currency the window's orders use (beyond api.md): the report covers one of them,
    # this says which others to ask for.
    currencies: list[str]
    revenue_cents: int
    # Refunds issued in the window (their event time), whenever the orders were placed.
    refunds_cents: int
    net_revenue_cents: int
    orders_by_status: dict[str, int]
    average_order_value_cents: int
    payment_failure_rate: float
    partial_fulfillment_rate: float
    top_products: list[TopProduct]
    groups: list[Group]
    # Beyond api.md's fields (extra fields are allowed): what follows the confirmation.
    fulfilment: Fulfilment
    return_rates: list[ReturnRate]

    def as_csv(self, *, names: bool = False) -> str:
        """The groups as CSV, every text cell safe to open in a sheet. The columns: api.md's
        `key,orders,revenueCents` first, then `refundsCents,netRevenueCents` appended (a reader
        of the first three is unaffected), and with `names` (by product) the product's `name`
        last."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_COLUMNS + (("name",) if names else ()))
        for group in self.groups:
            row: list[str | int] = [
                spreadsheet_safe(group.key),
                group.orders,
                group.revenue_cents,
                group.refunds_cents,
                group.net_revenue_cents,
            ]
            if names:
                row.append(spreadsheet_safe(group.name or ""))
            writer.writerow(row)
        return out.getvalue()


CSV_COLUMNS = ("key", "orders", "revenueCents", "refundsCents", "netRevenueCents")


class FunnelReport(ResponseModel):
    """Customers registered in the window and how far they got."""

    registered: int
    profile_complete: int
    first_order: int
    repeat_order: int


# -- audit ---------------------------------------------------------------------------------------


class AuditActor(ResponseModel):
    user_id: str | None = None
    role: str
    ip: str | None = None
    device: str | None = None
    region: str | None = None


class AuditEntry(ResponseModel):
    """One audited action: when, what, on which entity, with what outcome, by whom, from where."""

    at: datetime
    action: str
    entity_type: str | None = None
    entity_id: str | None = None
    outcome: Literal["ok", "denied", "failed"]
    actor: AuditActor
    correlation_id: str


# -- promotions and recommendations --------------------------------------------------------------


class Promotion(ResponseModel):
    code: str
    percent_off: int
    expires_at: datetime


class RecommendationOut(ResponseModel):
    product_id: str
    reason: str
