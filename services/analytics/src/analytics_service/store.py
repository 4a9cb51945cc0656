"""Mongo storage of the analytics service: the raw event store and the projections over it.

- `events`: every event as received with its audit entry (who/what/when/where) under `audit`,
  `_id` = event id, append-only (the audit trail reads this collection); the record of which
  events were applied: a batch inserts the rows of its new events with one `insert_many`;
- `order_facts`: one row per order, folded from its events (what sales reports aggregate),
  after the confirmation with its shipment times, its returns' lines and its refunds;
- `user_facts`: per user: registration, profile completion, confirmed orders, last activity;
- `products`: the catalogue replica with the last known stock state (recommendations);
- `promotions`: granted codes, `_id` = code, with `redeemed_at` once used.

Reports read `order_facts` and `user_facts` (one row per order / user, kept by the batch
handler), never the raw event store, so a report costs one aggregation over the window's rows.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReplaceOne, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection

from analytics_service.domain import DEFAULT_CURRENCY, Grant, Window, audit_entry
from analytics_service.projection import Changes, Update
from contracts import Envelope, Event
from kit.mongo import Db, Doc, IndexSpec, Session

INDEXES: list[IndexSpec] = [
    IndexSpec("events", [("type", ASCENDING), ("occurred_at", ASCENDING)], name="type_time"),
    IndexSpec("events", "occurred_at", name="time"),
    IndexSpec("events", "actor.user_id", name="actor"),
    IndexSpec("events", "correlation_id", name="correlation"),
    IndexSpec("events", [("audit.at", ASCENDING), ("_id", ASCENDING)], name="audit_time"),
    IndexSpec(
        "events",
        [("audit.actor.user_id", ASCENDING), ("audit.at", DESCENDING)],
        name="audit_actor_time",
    ),
    IndexSpec(
        "events", [("audit.entity_id", ASCENDING), ("audit.at", DESCENDING)], name="audit_entity"
    ),
    IndexSpec("order_facts", "placed_at", name="placed"),
    IndexSpec("order_facts", [("user_id", ASCENDING), ("status", ASCENDING)], name="user_status"),
    IndexSpec("order_facts", "items.product_id", name="products"),
    # The report's fulfilment figures and refunds, windowed by their own times (sparse: only
    # the orders that got that far have an entry).
    IndexSpec("order_facts", "shipped_at", sparse=True, name="shipped"),
    IndexSpec("order_facts", "delivered_at", sparse=True, name="delivered"),
    IndexSpec("order_facts", "refunds.at", sparse=True, name="refunds"),
    IndexSpec("user_facts", "registered_at", name="registered"),
    IndexSpec("products", "category", name="category"),
    IndexSpec("promotions", [("user_id", ASCENDING), ("expires_at", ASCENDING)], name="user"),
]

# Where the audit entries were kept before they moved onto the events' rows.
LEGACY_AUDIT = "audit"
# The inbox of the time before analytics consumed in batches (the `events` rows are the record
# of what was applied now: `bus.batch`).
LEGACY_INBOX = "inbox"


def event_row(envelope: Envelope[Event], recorded_at: datetime) -> Doc:
    """The event's row in `events`: the envelope as received, its audit entry under `audit`."""
    row = envelope.model_dump(mode="python")
    row["data"] = envelope.data.model_dump(mode="json", by_alias=True)
    row["_id"] = row.pop("id")
    row["recorded_at"] = recorded_at
    audit = audit_entry(envelope)
    del audit["_id"]
    row["audit"] = audit
    return row


@dataclass(frozen=True, slots=True)
class AuditFilters:
    """What the audit trail is filtered by (None: any)."""

    actor_id: str | None = None
    entity_id: str | None = None
    action: str | None = None
    correlation_id: str | None = None
    start: datetime | None = None
    end: datetime | None = None


class AnalyticsStore:
    """The analytics service's collections and the queries its reports run."""

    def __init__(self, db: Db) -> None:
        self.db = db
        self.events = db["events"]
        self.order_facts = db["order_facts"]
        self.user_facts = db["user_facts"]
        self.products = db["products"]
        self.promotions = db["promotions"]

    # -- writes (the batch handler, in its transaction) -----------------------------------------

    async def recorded(self, event_ids: Collection[str], session: Session) -> set[str]:
        """Which of these events have their row already (applied by an earlier transaction)."""
        if not event_ids:
            return set()
        cursor = self.events.find({"_id": {"$in": list(event_ids)}}, {"_id": 1}, session=session)
        return {row["_id"] async for row in cursor}

    async def insert_events(self, rows: list[Doc], session: Session) -> None:
        """Insert new events' rows (one insert). A row that appeared since `recorded` looked
        (a concurrent transaction) fails the transaction: retried, it finds the row there."""
        if rows:
            await self.events.insert_many(rows, session=session)

    async def by_ids(
        self, collection: str, ids: Collection[str], session: Session
    ) -> dict[str, Doc]:
        """The rows of `collection` with these ids (one `$in` query), by id."""
        if not ids:
            return {}
        cursor = self.db[collection].find({"_id": {"$in": sorted(ids)}}, session=session)
        return {row["_id"]: row async for row in cursor}

    async def apply(self, changes: Changes, session: Session) -> None:
        """Write a batch's projections: one bulk write per collection it changes."""
        writes: list[tuple[AsyncCollection[Any], list[Any]]] = [
            (
                self.order_facts,
                [
                    ReplaceOne({"_id": key}, fact, upsert=True)
                    for key, fact in changes.order_facts.items()
                ],
            ),
            (self.user_facts, _updates(changes.user_facts)),
            (self.products, _updates(changes.products)),
            (self.promotions, _updates(changes.promotions)),
        ]
        for collection, requests in writes:
            if requests:
                await collection.bulk_write(requests, session=session)

    async def save_promotion(
        self, user_id: str, grant: Grant, granted_at: datetime, session: Session
    ) -> None:
        """Record a granted code ($set, not insert-once: a PromotionRedeemed seen first left
        only `redeemed_at`)."""
        await self.promotions.update_one(
            {"_id": grant.code},
            {
                "$set": {
                    "user_id": user_id,
                    "rule": grant.rule,
                    "percent_off": grant.percent_off,
                    "expires_at": grant.expires_at,
                    "reason": grant.reason,
                    "granted_at": granted_at,
                }
            },
            upsert=True,
            session=session,
        )

    async def claim_rule(self, user_id: str, rule: str, session: Session) -> bool:
        """Note `rule` as granted to the user unless it was already (by another sweep): whether
        this call noted it."""
        claimed = await self.user_facts.update_one(
            {"_id": user_id, "granted_rules": {"$ne": rule}},
            {"$addToSet": {"granted_rules": rule}},
            session=session,
        )
        return claimed.modified_count > 0

    # -- start-up ----------------------------------------------------------------------------------

    async def adopt_legacy_audit(self, batch: int = 500) -> int:
        """Move the rows of the former `audit` collection onto their events' rows (`audit`), then
        drop it; the number of rows moved. Idempotent: an interrupted run is finished by the next.
        """
        if LEGACY_AUDIT not in await self.db.list_collection_names():
            return 0
        moved = 0
        pending: list[UpdateOne] = []
        async for row in self.db[LEGACY_AUDIT].find({}):
            event_id = row.pop("_id")
            pending.append(
                UpdateOne({"_id": event_id, "audit": {"$exists": False}}, {"$set": {"audit": row}})
            )
            if len(pending) >= batch:
                await self.events.bulk_write(pending, ordered=False)
                moved, pending = moved + len(pending), []
        if pending:
            await self.events.bulk_write(pending, ordered=False)
            moved += len(pending)
        await self.db.drop_collection(LEGACY_AUDIT)
        return moved

    async def drop_legacy_inbox(self) -> bool:
        """Drop the inbox of the time before the batch consumer (its rows and TTL index serve
        nothing now); whether there was one."""
        if LEGACY_INBOX not in await self.db.list_collection_names():
            return False
        await self.db.drop_collection(LEGACY_INBOX)
        return True

    # -- reads -----------------------------------------------------------------------------------

    async def aggregate(self, collection: str, pipeline: list[Doc]) -> list[Any]:
        cursor = await self.db[collection].aggregate(pipeline)
        return [doc async for doc in cursor]

    async def find(
        self,
        collection: str,
        query: Doc,
        *,
        sort: list[tuple[str, int]] | None = None,
        limit: int = 0,
        projection: Doc | None = None,
    ) -> list[Doc]:
        cursor = self.db[collection].find(query, projection)
        if sort:
            cursor = cursor.sort(sort)
        if limit:
            cursor = cursor.limit(limit)
        return [doc async for doc in cursor]

    async def sales_facets(self, window: Window, currency: str) -> Doc:
        """One aggregation over the window's order facts: the currencies they use and, for those
        in `currency`, totals, counts by status, confirmed sales by product and by day, and the
        units received back per product.

        An order's fact without a currency counts as the default currency.
        """
        in_currency = {
            "$match": {"currency": {"$in": [currency, None]}}
            if currency == DEFAULT_CURRENCY
            else {"currency": currency}
        }
        confirmed = {"$match": {"status": "CONFIRMED"}}
        by_product: list[Doc] = [
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
        # Units received back, per product, of the confirmed orders (the return rates' cohort).
        returned: list[Doc] = [
            confirmed,
            {"$unwind": "$returns"},
            {"$match": {"returns.received_at": {"$ne": None}}},
            {"$unwind": "$returns.lines"},
            {
                "$group": {
                    "_id": "$returns.lines.product_id",
                    "returned": {"$sum": "$returns.lines.quantity"},
                }
            },
        ]
        by_day: list[Doc] = [
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
        pipeline: list[Doc] = [
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
                    "returned": [in_currency, *returned],
                }
            },
        ]
        [facets] = await self.aggregate("order_facts", pipeline)
        return dict(facets)

    async def after_confirmation(self, window: Window) -> list[Doc]:
        """The order facts with a refund, a shipment or a delivery in the window (one query,
        each clause on its sparse index), with what the refunds and the fulfilment times
        need."""
        during = {"$gte": window.start, "$lt": window.end}
        during_fields = ("refunds.at", "shipped_at", "delivered_at")
        query = {"$or": [{name: during} for name in during_fields]}
        fields = ("currency", "items", "returns", "refunds", "confirmed_at", *during_fields[1:])
        projection = dict.fromkeys(fields, 1)  # (`refunds` whole: its `at` with it)
        return await self.find("order_facts", query, projection=projection)

    async def product_names(self, product_ids: Collection[str]) -> dict[str, str | None]:
        """The catalogue names of these products (those the replica knows)."""
        found = await self.find("products", {"_id": {"$in": list(product_ids)}})
        return {p["_id"]: p.get("name") for p in found}

    async def funnel(self, window: Window) -> Doc:
        """Customers registered in the window, and how many of them completed the profile,
        ordered once, ordered again (one aggregation over `user_facts`; {} for none)."""
        pipeline: list[Doc] = [
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
        rows = await self.aggregate("user_facts", pipeline)
        return dict(rows[0]) if rows else {}

    async def audit_entries(
        self, filters: AuditFilters, after: tuple[datetime, str] | None, limit: int
    ) -> list[Doc]:
        """Up to `limit` audit entries (each with its event id as `_id`) in time order, filtered,
        from after the position `(at, event id)`."""
        # The entry is the `audit` part of the event's row in `events` (one row per event).
        query: Doc = {}
        if filters.actor_id is not None:
            query["audit.actor.user_id"] = filters.actor_id
        if filters.entity_id is not None:
            query["audit.entity_id"] = filters.entity_id
        if filters.action is not None:
            query["audit.action"] = filters.action
        if filters.correlation_id is not None:
            query["correlation_id"] = filters.correlation_id  # the envelope's, indexed
        at: Doc = {}
        if filters.start is not None:
            at["$gte"] = filters.start
        if filters.end is not None:
            at["$lt"] = filters.end
        if at:
            query["audit.at"] = at
        if after is not None:
            query["$or"] = [
                {"audit.at": {"$gt": after[0]}},
                {"audit.at": after[0], "_id": {"$gt": after[1]}},
            ]
        found = await self.find(
            "events",
            query,
            sort=[("audit.at", 1), ("_id", 1)],
            limit=limit,
            projection={"audit": 1},
        )
        return [{**row["audit"], "_id": row["_id"]} for row in found]

    async def regions(self, user_ids: Collection[str]) -> dict[str, str]:
        """The region of each of these accounts that has one (given at sign-up)."""
        users = await self.find("user_facts", {"_id": {"$in": sorted(user_ids)}})
        return {u["_id"]: u["region"] for u in users if u.get("region")}

    async def active_promotions(self, user_id: str, now: datetime) -> list[Doc]:
        """A user's granted, unredeemed, unexpired promotions, the first to expire first."""
        return await self.find(
            "promotions",
            {"user_id": user_id, "redeemed_at": None, "expires_at": {"$gt": now}},
            sort=[("expires_at", 1)],
        )

    async def purchases(self, user_id: str) -> dict[str, int]:
        """In how many of the user's confirmed orders each product was, by product."""
        rows = await self.aggregate(
            "order_facts",
            [
                {"$match": {"user_id": user_id, "status": "CONFIRMED"}},
                {"$unwind": "$items"},
                {"$group": {"_id": "$items.product_id", "orders": {"$sum": 1}}},
            ],
        )
        return {row["_id"]: int(row["orders"]) for row in rows}

    async def co_purchases(self, bought: Collection[str]) -> dict[str, int]:
        """Products confirmed in the same orders as any of `bought` (not those), with how often."""
        rows = await self.aggregate(
            "order_facts",
            [
                {"$match": {"status": "CONFIRMED", "items.product_id": {"$in": list(bought)}}},
                {"$unwind": "$items"},
                {"$match": {"items.product_id": {"$nin": list(bought)}}},
                {"$group": {"_id": "$items.product_id", "n": {"$sum": 1}}},
            ],
        )
        return {row["_id"]: int(row["n"]) for row in rows}

    async def top_sellers(self, limit: int = 50) -> list[str]:
        """The products sold most (confirmed quantity), best first."""
        rows = await self.aggregate(
            "order_facts",
            [
                {"$match": {"status": "CONFIRMED"}},
                {"$unwind": "$items"},
                {"$group": {"_id": "$items.product_id", "quantity": {"$sum": "$items.quantity"}}},
                {"$sort": {"quantity": -1, "_id": 1}},
                {"$limit": limit},
            ],
        )
        return [row["_id"] for row in rows]

    async def live_products(self) -> list[Doc]:
        """The catalogue replica's products that are not deleted."""
        return await self.find("products", {"deleted": {"$ne": True}})

    async def winback_candidates(self, inactive_since: datetime) -> list[Doc]:
        """Customers (not deleted) inactive since `inactive_since` without a win-back code."""
        return await self.find(
            "user_facts",
            {
                "role": "Customer",
                "deleted": {"$ne": True},
                "last_active_at": {"$lte": inactive_since},
                "granted_rules": {"$ne": "winback"},
            },
        )


def _updates(updates: Mapping[str, Update]) -> list[UpdateOne]:
    return [UpdateOne({"_id": key}, u.as_mongo(), upsert=True) for key, u in updates.items()]
