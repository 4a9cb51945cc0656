"""What the analytics routes answer: Mongo aggregations over the maintained projections.

Reports read `order_facts` and `user_facts` (one row per order / user, kept by the handlers),
never the raw event store, so a report costs one aggregation over the window's rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from analytics_service.domain import Recommendation, rate, recommend
from analytics_service.store import AnalyticsStore

TOP_PRODUCTS = 5
DEFAULT_CURRENCY = "USD"


@dataclass(frozen=True, slots=True)
class Window:
    start: datetime  # inclusive
    end: datetime  # exclusive


async def sales(
    store: AnalyticsStore,
    window: Window,
    group_by: Literal["day", "product"],
    currency: str = DEFAULT_CURRENCY,
) -> dict[str, Any]:
    """Revenue (CONFIRMED orders), orders by status, rates, top products and groups of the
    window's orders in `currency`, and which currencies the window's orders use.

    One currency per report: cents of two currencies do not add up to anything. An order's
    fact without a currency (only its later events seen so far, or folded before currencies
    were kept) counts as the default currency, as the order itself does.
    """
    in_currency = {
        "$match": {"currency": {"$in": [currency, None]}}
        if currency == DEFAULT_CURRENCY
        else {"currency": currency}
    }
    confirmed = {"$match": {"status": "CONFIRMED"}}
    by_product: list[dict[str, Any]] = [
        confirmed,
        {"$unwind": "$items"},
        {
            "$group": {
                "_id": "$items.product_id",
                "quantity": {"$sum": "$items.quantity"},
                # The line's share of what was charged (facts folded before the share was
                # kept have only list prices).
                "revenue_cents": {
                    "$sum": {
                        "$ifNull": [
                            "$items.revenue_cents",
                            {"$multiply": ["$items.quantity", "$items.price_cents"]},
                        ]
                    }
                },
                "orders": {"$addToSet": "$_id"},
            }
        },
        {"$sort": {"revenue_cents": -1, "_id": 1}},
    ]
    by_day: list[dict[str, Any]] = [
        confirmed,
        {
            "$group": {
                "_id": "$day",
                "orders": {"$sum": 1},
                "revenue_cents": {"$sum": "$revenue_cents"},
            }
        },
        {"$sort": {"_id": 1}},
    ]
    pipeline: list[dict[str, Any]] = [
        {"$match": {"placed_at": {"$gte": window.start, "$lt": window.end}}},
        {
            "$facet": {
                "currencies": [
                    {"$group": {"_id": {"$ifNull": ["$currency", DEFAULT_CURRENCY]}}},
                    {"$sort": {"_id": 1}},
                ],
                "totals": [
                    in_currency,
                    {
                        "$group": {
                            "_id": None,
                            "orders": {"$sum": 1},
                            "revenue_cents": {"$sum": "$revenue_cents"},
                            "confirmed": {
                                "$sum": {"$cond": [{"$eq": ["$status", "CONFIRMED"]}, 1, 0]}
                            },
                            "payment_failed": {"$sum": {"$cond": ["$payment_failed", 1, 0]}},
                            "partial": {"$sum": {"$cond": ["$partial", 1, 0]}},
                        }
                    },
                ],
                "by_status": [in_currency, {"$group": {"_id": "$status", "n": {"$sum": 1}}}],
                "by_product": [in_currency, *by_product],
                "by_day": [in_currency, *by_day],
            }
        },
    ]
    [facets] = await store.aggregate("order_facts", pipeline)
    totals = (facets["totals"] or [{}])[0]
    orders = int(totals.get("orders", 0))
    revenue = int(totals.get("revenue_cents", 0))
    confirmed_count = int(totals.get("confirmed", 0))
    products = facets["by_product"]
    names = {
        p["_id"]: p.get("name")
        for p in await store.find("products", {"_id": {"$in": [p["_id"] for p in products]}})
    }
    if group_by == "product":
        groups = [
            {"key": p["_id"], "orders": len(p["orders"]), "revenue_cents": p["revenue_cents"]}
            for p in products
        ]
    else:
        groups = [
            {"key": d["_id"], "orders": d["orders"], "revenue_cents": d["revenue_cents"]}
            for d in facets["by_day"]
        ]
    return {
        "from": window.start,
        "to": window.end,
        "currency": currency,
        "currencies": [c["_id"] for c in facets["currencies"]],
        "revenue_cents": revenue,
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
    }


async def funnel(store: AnalyticsStore, window: Window) -> dict[str, int]:
    """Customers registered in the window → profile complete → first order → repeat order."""
    pipeline: list[dict[str, Any]] = [
        {
            "$match": {
                "registered_at": {"$gte": window.start, "$lt": window.end},
                "role": "Customer",
            }
        },
        {
            "$project": {
                "complete": 1,
                "orders": {"$size": {"$ifNull": ["$confirmed_orders", []]}},
                "profile": {"$ifNull": ["$profile_complete_at", None]},
            }
        },
        {
            "$group": {
                "_id": None,
                "registered": {"$sum": 1},
                "profile_complete": {"$sum": {"$cond": [{"$ne": ["$profile", None]}, 1, 0]}},
                "first_order": {"$sum": {"$cond": [{"$gte": ["$orders", 1]}, 1, 0]}},
                "repeat_order": {"$sum": {"$cond": [{"$gte": ["$orders", 2]}, 1, 0]}},
            }
        },
    ]
    rows = await store.aggregate("user_facts", pipeline)
    row = rows[0] if rows else {}
    return {
        key: int(row.get(key, 0))
        for key in ("registered", "profile_complete", "first_order", "repeat_order")
    }


async def audit_page(
    store: AnalyticsStore,
    *,
    actor_id: str | None,
    entity_id: str | None,
    action: str | None,
    correlation_id: str | None = None,
    start: datetime | None,
    end: datetime | None,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Audit entries in time order, filtered, from after the cursor position (limit + 1 rows)."""
    # The entry is the `audit` part of the event's row in `events` (one row per event).
    query: dict[str, Any] = {}
    if actor_id is not None:
        query["audit.actor.user_id"] = actor_id
    if entity_id is not None:
        query["audit.entity_id"] = entity_id
    if action is not None:
        query["audit.action"] = action
    if correlation_id is not None:
        query["correlation_id"] = correlation_id  # the envelope's, indexed
    at: dict[str, Any] = {}
    if start is not None:
        at["$gte"] = start
    if end is not None:
        at["$lt"] = end
    if at:
        query["audit.at"] = at
    if after is not None:
        query["$or"] = [
            {"audit.at": {"$gt": after[0]}},
            {"audit.at": after[0], "_id": {"$gt": after[1]}},
        ]
    found = await store.find(
        "events",
        query,
        sort=[("audit.at", 1), ("_id", 1)],
        limit=limit + 1,
        projection={"audit": 1},
    )
    rows = [{**row["audit"], "_id": row["_id"]} for row in found]
    return await with_account_regions(store, rows)


async def with_account_regions(
    store: AnalyticsStore, rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Rows whose actor came without a region (no `X-Region`, no GeoIP) get the region of the
    actor's account (given at sign-up, kept from UserRegistered), so every entry says where."""
    unknown = {
        r["actor"]["user_id"]
        for r in rows
        if r.get("actor", {}).get("user_id") and not r["actor"].get("region")
    }
    if not unknown:
        return rows
    users = await store.find("user_facts", {"_id": {"$in": sorted(unknown)}})
    regions = {u["_id"]: u["region"] for u in users if u.get("region")}
    for row in rows:
        actor = row.get("actor", {})
        if not actor.get("region") and actor.get("user_id") in regions:
            row["actor"] = {**actor, "region": regions[actor["user_id"]]}
    return rows


async def active_promotions(store: AnalyticsStore, user_id: str, now: datetime) -> list[Any]:
    """A user's granted, unredeemed, unexpired promotions."""
    return await store.find(
        "promotions",
        {"user_id": user_id, "redeemed_at": None, "expires_at": {"$gt": now}},
        sort=[("expires_at", 1)],
    )


async def recommendations(store: AnalyticsStore, user_id: str) -> list[Recommendation]:
    """Bought together, same category, top sellers; only products the user can buy."""
    mine = await store.aggregate(
        "order_facts",
        [
            {"$match": {"user_id": user_id, "status": "CONFIRMED"}},
            {"$unwind": "$items"},
            {"$group": {"_id": "$items.product_id", "orders": {"$sum": 1}}},
        ],
    )
    bought = {row["_id"]: int(row["orders"]) for row in mine}
    co: dict[str, int] = {}
    if bought:
        rows = await store.aggregate(
            "order_facts",
            [
                {"$match": {"status": "CONFIRMED", "items.product_id": {"$in": list(bought)}}},
                {"$unwind": "$items"},
                {"$match": {"items.product_id": {"$nin": list(bought)}}},
                {"$group": {"_id": "$items.product_id", "n": {"$sum": 1}}},
            ],
        )
        co = {row["_id"]: int(row["n"]) for row in rows}
    sellers = await store.aggregate(
        "order_facts",
        [
            {"$match": {"status": "CONFIRMED"}},
            {"$unwind": "$items"},
            {"$group": {"_id": "$items.product_id", "quantity": {"$sum": "$items.quantity"}}},
            {"$sort": {"quantity": -1, "_id": 1}},
            {"$limit": 50},
        ],
    )
    top = [row["_id"] for row in sellers]
    products = await store.find("products", {"deleted": {"$ne": True}})
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
