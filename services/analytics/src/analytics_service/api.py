"""HTTP routes of the analytics service: four areas, each its own router (reached through the
gateway under `/api/v1/recommendations`, `/promotions`, `/reports` and `/audit`)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import Field

from analytics_service import queries
from analytics_service.domain import spreadsheet_safe
from analytics_service.store import AnalyticsStore
from kit.auth import Principal, require_roles
from kit.errors import PROBLEM_RESPONSES, validation_problem
from kit.models import (
    DEFAULT_LIMIT,
    Cursor,
    Limit,
    Page,
    ResponseModel,
    decode_cursor,
    encode_cursor,
    invalid_cursor,
)

recommendations = APIRouter(prefix="/api/v1/recommendations", tags=["recommendations"])
promotions = APIRouter(prefix="/api/v1/promotions", tags=["promotions"])
reports = APIRouter(prefix="/api/v1/reports", tags=["reports"])
audit = APIRouter(prefix="/api/v1/audit", tags=["audit"])

DEFAULT_WINDOW = timedelta(days=30)


def get_store(request: Request) -> AnalyticsStore:
    return cast(AnalyticsStore, request.app.state.deps.store)


StoreDep = Annotated[AnalyticsStore, Depends(get_store)]
Customer = Annotated[Principal, require_roles("Customer")]
Staff = Annotated[Principal, require_roles("Manager", "Admin")]
TimeParam = Annotated[str | None, Query(max_length=40, description="RFC 3339 date or date-time")]


def _parse_time(name: str, value: str | None, *, end: bool) -> datetime | None:
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


def _window(start: str | None, end: str | None) -> queries.Window:
    to = _parse_time("to", end, end=True) or datetime.now(UTC)
    since = _parse_time("from", start, end=False) or to - DEFAULT_WINDOW
    if since >= to:
        raise validation_problem([{"field": "from", "message": "from must be before to"}])
    return queries.Window(since, to)


# -- reports -------------------------------------------------------------------------------------


class TopProduct(ResponseModel):
    product_id: str
    name: str | None = None
    quantity: int
    revenue_cents: int


class Group(ResponseModel):
    key: str
    orders: int
    revenue_cents: int


class SalesReport(ResponseModel):
    """Sales of orders placed in the window; revenue counts CONFIRMED orders only."""

    from_: datetime = Field(alias="from")
    to: datetime
    currency: str
    # Every currency the window's orders use (beyond api.md): the report covers one of them,
    # this says which others to ask for.
    currencies: list[str]
    revenue_cents: int
    orders_by_status: dict[str, int]
    average_order_value_cents: int
    payment_failure_rate: float
    partial_fulfillment_rate: float
    top_products: list[TopProduct]
    groups: list[Group]


class FunnelReport(ResponseModel):
    """Customers registered in the window and how far they got."""

    registered: int
    profile_complete: int
    first_order: int
    repeat_order: int


@reports.get("/sales", response_model=SalesReport, responses=PROBLEM_RESPONSES)
async def sales_report(
    _: Staff,
    store: StoreDep,
    start: Annotated[TimeParam, Query(alias="from")] = None,
    to: TimeParam = None,
    group_by: Annotated[Literal["day", "product"], Query(alias="groupBy")] = "day",
    format: Literal["json", "csv"] = "json",  # noqa: A002 - the API's parameter name
    currency: Annotated[str, Query(pattern=r"^[A-Z]{3}$")] = queries.DEFAULT_CURRENCY,
) -> Any:
    """Sales by day or product (Manager, Admin); `format=csv` answers the groups as CSV.

    Every amount is in `currency` (default USD): the report covers that currency's orders only.
    """
    report = SalesReport.model_validate(
        await queries.sales(store, _window(start, to), group_by, currency), by_name=True
    )
    if format == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["key", "orders", "revenueCents"])
        for group in report.groups:
            writer.writerow([spreadsheet_safe(group.key), group.orders, group.revenue_cents])
        return Response(out.getvalue(), media_type="text/csv")
    return report


@reports.get("/funnel", responses=PROBLEM_RESPONSES)
async def funnel_report(
    _: Staff,
    store: StoreDep,
    start: Annotated[TimeParam, Query(alias="from")] = None,
    to: TimeParam = None,
) -> FunnelReport:
    """Registered → profile complete → first order → repeat order (Manager, Admin)."""
    return FunnelReport(**await queries.funnel(store, _window(start, to)))


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


IdParam = Annotated[str | None, Query(max_length=200)]


@audit.get("", responses=PROBLEM_RESPONSES)
async def audit_trail(
    _: Staff,
    store: StoreDep,
    actor_id: Annotated[IdParam, Query(alias="actorId")] = None,
    entity_id: Annotated[IdParam, Query(alias="entityId")] = None,
    action: IdParam = None,
    correlation_id: Annotated[IdParam, Query(alias="correlationId")] = None,
    start: Annotated[TimeParam, Query(alias="from")] = None,
    to: TimeParam = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[AuditEntry]:
    """The audit trail in time order (Admin; Manager read-only), filtered and paged.

    `correlationId` (beyond api.md's filters) follows one order or journey across services.
    """
    position = decode_cursor(cursor)
    after = None
    if position is not None:
        at, last = position.get("at"), position.get("id")
        if not isinstance(at, datetime) or not isinstance(last, str):
            raise invalid_cursor()
        after = (at, last)
    rows = await queries.audit_page(
        store,
        actor_id=actor_id,
        entity_id=entity_id,
        action=action,
        correlation_id=correlation_id,
        start=_parse_time("from", start, end=False),
        end=_parse_time("to", to, end=True),
        after=after,
        limit=limit,
    )
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor({"at": rows[-1]["at"], "id": rows[-1]["_id"]}) if more else None
    return Page[AuditEntry](
        items=[AuditEntry.model_validate(r) for r in rows], next_cursor=next_cursor
    )


# -- promotions and recommendations --------------------------------------------------------------


class Promotion(ResponseModel):
    code: str
    percent_off: int
    expires_at: datetime


class RecommendationOut(ResponseModel):
    product_id: str
    reason: str


@promotions.get("", responses=PROBLEM_RESPONSES)
async def my_promotions(user: Customer, store: StoreDep) -> Page[Promotion]:
    """The caller's active promotions: granted, not redeemed, not expired."""
    rows = await queries.active_promotions(store, user.user_id, datetime.now(UTC))
    return Page[Promotion](
        items=[
            Promotion(code=r["_id"], percent_off=r["percent_off"], expires_at=r["expires_at"])
            for r in rows
        ]
    )


@recommendations.get("", responses=PROBLEM_RESPONSES)
async def my_recommendations(user: Customer, store: StoreDep) -> Page[RecommendationOut]:
    """Products for the caller from co-purchases, their categories and top sellers."""
    found = await queries.recommendations(store, user.user_id)
    return Page[RecommendationOut](
        items=[RecommendationOut(product_id=r.product_id, reason=r.reason) for r in found]
    )


ROUTERS = [recommendations, promotions, reports, audit]
