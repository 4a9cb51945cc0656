"""Mongo storage of the analytics service: the raw event store and the projections over it.

- `events`: every event as received with its audit entry (who/what/when/where) under `audit`,
  `_id` = event id, append-only (the audit trail reads this collection); the record of which
  events were applied: a batch inserts the rows of its new events with one `insert_many`;
- `order_facts`: one row per order, folded from its events (what sales reports aggregate);
- `user_facts`: per user: registration, profile completion, confirmed orders, last activity;
- `products`: the catalogue replica with the last known stock state (recommendations);
- `promotions`: granted codes, `_id` = code, with `redeemed_at` once used.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReplaceOne, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from analytics_service.domain import Grant
from analytics_service.projection import Changes, Update
from kit.mongo import IndexSpec

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
    IndexSpec("user_facts", "registered_at", name="registered"),
    IndexSpec("products", "category", name="category"),
    IndexSpec("promotions", [("user_id", ASCENDING), ("expires_at", ASCENDING)], name="user"),
]

type Session = AsyncClientSession | None

# Where the audit entries were kept before they moved onto the events' rows.
LEGACY_AUDIT = "audit"


class AnalyticsStore:
    """The analytics service's collections and the queries its reports run."""

    def __init__(self, db: AsyncDatabase[Any]) -> None:
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

    async def insert_events(self, rows: list[dict[str, Any]], session: Session) -> None:
        """Insert new events' rows (one insert). A row that appeared since `recorded` looked
        (a concurrent transaction) fails the transaction: retried, it finds the row there."""
        if rows:
            await self.events.insert_many(rows, session=session)

    async def by_ids(
        self, collection: str, ids: Collection[str], session: Session
    ) -> dict[str, dict[str, Any]]:
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

    # -- reads -----------------------------------------------------------------------------------

    async def aggregate(self, collection: str, pipeline: list[dict[str, Any]]) -> list[Any]:
        cursor = await self.db[collection].aggregate(pipeline)
        return [doc async for doc in cursor]

    async def find(
        self,
        collection: str,
        query: dict[str, Any],
        *,
        sort: list[tuple[str, int]] | None = None,
        limit: int = 0,
        projection: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        cursor = self.db[collection].find(query, projection)
        if sort:
            cursor = cursor.sort(sort)
        if limit:
            cursor = cursor.limit(limit)
        return [doc async for doc in cursor]


def _updates(updates: Mapping[str, Update]) -> list[UpdateOne]:
    return [UpdateOne({"_id": key}, u.as_mongo(), upsert=True) for key, u in updates.items()]
