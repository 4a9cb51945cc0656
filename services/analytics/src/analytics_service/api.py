"""HTTP routes of the analytics service: four areas, each its own router (reached through the
gateway under `/api/v1/recommendations`, `/promotions`, `/reports` and `/audit`).

Each route parses its parameters (`schemas.py`), runs one command (`commands.py`) and answers.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response

from analytics_service import commands
from analytics_service.deps import DepsDep
from analytics_service.domain import DEFAULT_CURRENCY
from analytics_service.schemas import (
    AuditEntry,
    FunnelReport,
    IdParam,
    Promotion,
    RecommendationOut,
    SalesReport,
    TimeParam,
    audit_position,
    parse_time,
    report_window,
)
from analytics_service.store import AuditFilters
from kit.auth import Principal, require_roles
from kit.errors import PROBLEM_RESPONSES
from kit.models import DEFAULT_LIMIT, Cursor, Limit, Page, encode_cursor

recommendations = APIRouter(prefix="/api/v1/recommendations", tags=["recommendations"])
promotions = APIRouter(prefix="/api/v1/promotions", tags=["promotions"])
reports = APIRouter(prefix="/api/v1/reports", tags=["reports"])
audit = APIRouter(prefix="/api/v1/audit", tags=["audit"])

Customer = Annotated[Principal, require_roles("Customer")]
Staff = Annotated[Principal, require_roles("Manager", "Admin")]


# -- reports -------------------------------------------------------------------------------------


@reports.get("/sales", response_model=SalesReport, responses=PROBLEM_RESPONSES)
async def sales_report(
    _: Staff,
    deps: DepsDep,
    start: Annotated[TimeParam, Query(alias="from")] = None,
    to: TimeParam = None,
    group_by: Annotated[Literal["day", "product"], Query(alias="groupBy")] = "day",
    format: Literal["json", "csv"] = "json",  # noqa: A002 - the API's parameter name
    currency: Annotated[str, Query(pattern=r"^[A-Z]{3}$")] = DEFAULT_CURRENCY,
) -> Any:
    """Sales by day or product (Manager, Admin); `format=csv` answers the groups as CSV.

    Every amount is in `currency` (default USD): the report covers that currency's orders only.
    """
    window = report_window(start, to, deps.clock())
    found = await commands.sales_report(deps, window, group_by, currency)
    report = SalesReport.model_validate(found, by_name=True)
    if format == "csv":
        return Response(report.as_csv(names=group_by == "product"), media_type="text/csv")
    return report


@reports.get("/funnel", responses=PROBLEM_RESPONSES)
async def funnel_report(
    _: Staff,
    deps: DepsDep,
    start: Annotated[TimeParam, Query(alias="from")] = None,
    to: TimeParam = None,
) -> FunnelReport:
    """Registered → profile complete → first order → repeat order (Manager, Admin)."""
    window = report_window(start, to, deps.clock())
    return FunnelReport(**await commands.funnel_report(deps, window))


# -- audit ---------------------------------------------------------------------------------------


@audit.get("", responses=PROBLEM_RESPONSES)
async def audit_trail(
    _: Staff,
    deps: DepsDep,
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
    after = audit_position(cursor)
    filters = AuditFilters(
        actor_id=actor_id,
        entity_id=entity_id,
        action=action,
        correlation_id=correlation_id,
        start=parse_time("from", start, end=False),
        end=parse_time("to", to, end=True),
    )
    rows, more = await commands.audit_trail(deps, filters, after=after, limit=limit)
    next_cursor = encode_cursor({"at": rows[-1]["at"], "id": rows[-1]["_id"]}) if more else None
    items = [AuditEntry.model_validate(r) for r in rows]
    return Page[AuditEntry](items=items, next_cursor=next_cursor)


# -- promotions and recommendations --------------------------------------------------------------


@promotions.get("", responses=PROBLEM_RESPONSES)
async def my_promotions(user: Customer, deps: DepsDep) -> Page[Promotion]:
    """The caller's active promotions: granted, not redeemed, not expired."""
    rows = await commands.active_promotions(deps, user.user_id)
    return Page[Promotion](
        items=[
            Promotion(code=r["_id"], percent_off=r["percent_off"], expires_at=r["expires_at"])
            for r in rows
        ]
    )


@recommendations.get("", responses=PROBLEM_RESPONSES)
async def my_recommendations(user: Customer, deps: DepsDep) -> Page[RecommendationOut]:
    """Products for the caller from co-purchases, their categories and top sellers."""
    found = await commands.recommendations(deps, user.user_id)
    return Page[RecommendationOut](
        items=[RecommendationOut(product_id=r.product_id, reason=r.reason) for r in found]
    )


ROUTERS = [recommendations, promotions, reports, audit]
