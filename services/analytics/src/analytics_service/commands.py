"""The analytics service's use cases: record a batch of events, answer the reports, win back.

- `record_events`: the batch handler's command. Exactly once comes from the `events` collection,
  keyed by event id: the ids of the batch that have a row already are skipped (no inbox rows),
  the new events' rows go in with one insert and only those events are folded into the
  projections (`projection.fold_batch`: one `$in` read and one bulk write per collection), all in
  the batch's transaction. A loyalty grant's `PromotionGranted` goes to the outbox in that
  transaction too, caused by the confirmation that earned it.
- the reports, the audit trail, a customer's promotions and recommendations: reads of the
  projections (`store.py`), shaped here;
- `grant_winbacks`: the win-back sweep. Inactivity is the absence of events, so no handler can
  notice it: `bootstrap.background` runs this periodically. Each grant is one transaction (the
  user's `granted_rules` guard, the promotion and the `PromotionGranted` outbox row), so two
  instances sweeping at once grant a user once: the second one's conditional update matches
  nothing (or conflicts and retries into that).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any, Literal

import structlog
from pymongo.asynchronous.client_session import AsyncClientSession

from analytics_service.deps import Deps
from analytics_service.domain import (
    TOP_PRODUCTS,
    Grant,
    Recommendation,
    Window,
    fulfilment_times,
    rate,
    recommend,
    refunds_in,
    return_rates,
    winback_grant,
    with_refunds,
)
from analytics_service.projection import (
    Snapshot,
    fold_batch,
    new_events,
    order_ids_of,
    stock_product_ids_of,
    user_ids_of,
)
from analytics_service.store import AuditFilters, event_row
from bus.batch import BatchContext
from contracts import SYSTEM, Envelope, Event
from contracts.analytics import PromotionGranted
from kit.mongo import Doc

log = structlog.get_logger("analytics.commands")


# -- recording events ------------------------------------------------------------------------------


async def record_events(
    deps: Deps, envelopes: Sequence[Envelope[Event]], batch: BatchContext[Any]
) -> list[str]:
    """Record the batch's new events (raw store + audit trail) and fold them into the
    projections, all in the batch's transaction (`batch.session`); the ids recorded."""
    store, session = deps.store, batch.session
    recorded = await store.recorded({e.id for e in envelopes}, session)
    fresh = new_events(envelopes, recorded)
    if not fresh:
        return []
    at = deps.clock()
    await store.insert_events([event_row(e, at) for e in fresh], session)
    order_facts = await store.by_ids("order_facts", order_ids_of(fresh), session)
    users = user_ids_of(fresh, order_facts)
    snapshot = Snapshot(
        order_facts=order_facts,
        user_facts=await store.by_ids("user_facts", users, session),
        products=await store.by_ids("products", stock_product_ids_of(fresh), session),
        users_read=frozenset(users),
    )
    changes = fold_batch(fresh, snapshot)
    await store.apply(changes, session)
    for cause, granted in changes.grants:
        await batch.emit(cause, granted, actor=SYSTEM)
    return [e.id for e in fresh]


# -- reports -------------------------------------------------------------------------------------


async def sales_report(
    deps: Deps, window: Window, group_by: Literal["day", "product"], currency: str
) -> Doc:
    """Revenue (CONFIRMED orders), orders by status, rates, top products and groups of the
    window's orders in `currency`, and which currencies the window's orders use.

    One currency per report: cents of two currencies do not add up to anything.

    After the confirmation (`domain`'s report maths): `refunds_cents` = the refunds whose event
    time is in the window (whenever their orders were placed), `net_revenue_cents` = revenue −
    refunds, both per group too (a day: that day's refunds; a product: its share of each refund
    by the return's lines; a product group also has the product's `name`); `fulfilment`:
    seconds from confirmation to shipment and to delivery over the orders shipped / delivered
    in the window; `return_rates`: per product of the window's confirmed orders, units received
    back / units sold.
    """
    facets = await deps.store.sales_facets(window, currency)
    totals = (facets["totals"] or [{}])[0]
    orders = int(totals.get("orders", 0))
    revenue = int(totals.get("revenue_cents", 0))
    confirmed_count = int(totals.get("confirmed", 0))
    products = facets["by_product"]
    late = await deps.store.after_confirmation(window)
    refunds = refunds_in(late, window, currency)
    to_shipment, to_delivery = fulfilment_times(late, window, currency)
    # Each product under its name in the catalogue replica now (a renamed product's sales are
    # one row, under its new name; a deleted one keeps its last); None when never heard of.
    names = await deps.store.product_names({p["_id"] for p in products} | set(refunds.by_product))
    if group_by == "product":
        groups = [
            {"key": p["_id"], "orders": len(p["orders"]), "revenue_cents": p["revenue_cents"]}
            for p in products
        ]
        groups = [
            {**g, "name": names.get(g["key"])}
            for g in with_refunds(groups, refunds.by_product, sort=False)
        ]
    else:
        groups = [
            {"key": d["_id"], "orders": d["orders"], "revenue_cents": d["revenue_cents"]}
            for d in facets["by_day"]
        ]
        groups = with_refunds(groups, refunds.by_day, sort=True)
    rates = return_rates(
        {p["_id"]: p["quantity"] for p in products},
        {r["_id"]: r["returned"] for r in facets["returned"]},
    )
    return {
        "from": window.start,
        "to": window.end,
        "currency": currency,
        "currencies": [c["_id"] for c in facets["currencies"]],
        "revenue_cents": revenue,
        "refunds_cents": refunds.total_cents,
        "net_revenue_cents": revenue - refunds.total_cents,
        "orders_by_status": {s["_id"]: s["n"] for s in facets["by_status"]},
        "average_order_value_cents": revenue // confirmed_count if confirmed_count else 0,
        "payment_failure_rate": rate(int(totals.get("payment_failed", 0)), orders),
        "partial_fulfillment_rate": rate(int(totals.get("partial", 0)), orders),
        "top_products": [
            {
                "product_id": p["_id"],
                "name": names.get(p["_id"]),
                "quantity": p["quantity"],
                "revenue_cents": p["revenue_cents"],
            }
            for p in products[:TOP_PRODUCTS]
        ],
        "groups": groups,
        "fulfilment": {"to_shipment": asdict(to_shipment), "to_delivery": asdict(to_delivery)},
        "return_rates": [{**r, "name": names.get(r["product_id"])} for r in rates],
    }


async def funnel_report(deps: Deps, window: Window) -> dict[str, int]:
    """Customers registered in the window → profile complete → first order → repeat order."""
    row = await deps.store.funnel(window)
    return {
        key: int(row.get(key, 0))
        for key in ("registered", "profile_complete", "first_order", "repeat_order")
    }


async def audit_trail(
    deps: Deps, filters: AuditFilters, *, after: tuple[datetime, str] | None, limit: int
) -> tuple[list[Doc], bool]:
    """Up to `limit` audit entries in time order from after the cursor position, and whether
    more follow. An entry whose actor came without a region (no `X-Region`, no GeoIP) gets the
    region of the actor's account (given at sign-up, kept from UserRegistered)."""
    rows = await deps.store.audit_entries(filters, after, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    unknown = {
        r["actor"]["user_id"]
        for r in rows
        if r.get("actor", {}).get("user_id") and not r["actor"].get("region")
    }
    regions = await deps.store.regions(unknown) if unknown else {}
    for row in rows:
        actor = row.get("actor", {})
        if not actor.get("region") and actor.get("user_id") in regions:
            row["actor"] = {**actor, "region": regions[actor["user_id"]]}
    return rows, more


# -- a customer's promotions and recommendations ---------------------------------------------------


async def active_promotions(deps: Deps, user_id: str) -> list[Doc]:
    """The user's granted, unredeemed, unexpired promotions."""
    return await deps.store.active_promotions(user_id, deps.clock())


async def recommendations(deps: Deps, user_id: str) -> list[Recommendation]:
    """Bought together, same category, top sellers; only products the user can buy."""
    store = deps.store
    bought = await store.purchases(user_id)
    co = await store.co_purchases(list(bought)) if bought else {}
    top = await store.top_sellers()
    products = await store.live_products()
    # Buyable: known to the catalogue replica, not deleted, not known to be out of stock.
    buyable = {p["_id"] for p in products if p.get("available", 1) > 0 and p.get("name")}
    categories = {p.get("category") for p in products if p["_id"] in bought}
    rank = {product_id: i for i, product_id in enumerate(top)}
    same = sorted(
        (p["_id"] for p in products if p.get("category") in categories),
        key=lambda pid: (rank.get(pid, len(rank)), pid),
    )
    return recommend(
        bought=bought,
        co_purchased=co,
        same_category=same,
        top_sellers=top,
        catalogue=sorted(buyable),
        buyable=buyable,
    )


# -- win-back ------------------------------------------------------------------------------------


async def grant_winbacks(deps: Deps, now: datetime) -> int:
    """Grant every due win-back code (customers inactive for `winback_after_days`); how many."""
    inactive_for = timedelta(days=deps.settings.winback_after_days)
    granted = 0
    for user in await deps.store.winback_candidates(now - inactive_for):
        grant = winback_grant(
            user["_id"],
            user.get("last_active_at"),
            len(user.get("confirmed_orders", [])),
            user.get("granted_rules", []),
            now,
            inactive_for,
        )
        if grant is not None and await _grant(deps, user["_id"], grant, now):
            granted += 1
    if granted:
        deps.bus.notify()
        log.info("analytics.winback_granted", count=granted)
    return granted


async def _grant(deps: Deps, user_id: str, grant: Grant, now: datetime) -> bool:
    event = PromotionGranted(
        user_id=user_id,
        code=grant.code,
        percent_off=grant.percent_off,
        expires_at=grant.expires_at,
        reason=grant.reason,
    )
    envelope = Envelope.wrap(event, correlation_id=user_id)

    async def body(session: AsyncClientSession) -> bool:
        if not await deps.store.claim_rule(user_id, grant.rule, session):
            return False  # another sweep got there first
        await deps.store.save_promotion(user_id, grant, now, session)
        await deps.outbox.add(session, envelope)
        return True

    return await deps.write(body)
