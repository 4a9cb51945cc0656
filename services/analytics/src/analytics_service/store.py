"""Mongo storage of the analytics service: the raw event store and the projections over it.

- `events`: every event as received with its audit entry (who/what/when/where) under `audit`,
  `_id` = event id: one insert per event, append-only (the audit trail reads this collection);
- `order_facts`: one row per order, folded from its events (what sales reports aggregate);
- `user_facts`: per user: registration, profile completion, confirmed orders, last activity;
- `products`: the catalogue replica with the last known stock state (recommendations);
- `promotions`: granted codes, `_id` = code, with `redeemed_at` once used.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReturnDocument, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from analytics_service.domain import Grant
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

    # -- writes (handlers, in their transaction) -----------------------------------------------

    async def record(self, row: dict[str, Any], session: Session) -> bool:
        """Insert an event's row (keyed by event id); False when that id is recorded already.

        A plain insert, not an upsert that must look the id up first. The consumer's inbox row
        already keeps an event from being handled twice, so the duplicate key is a last guard
        (an inbox row lost). The embedded server lets the transaction go on after it; a real
        MongoDB aborts a transaction on a write error, so there the commit fails and the
        delivery is retried, then dead-lettered, rather than the event folded twice.
        """
        try:
            await self.events.insert_one(row, session=session)
        except DuplicateKeyError:
            return False
        return True

    async def order_fact(self, order_id: str, session: Session) -> dict[str, Any] | None:
        return await self.order_facts.find_one({"_id": order_id}, session=session)

    async def save_order_fact(self, fact: dict[str, Any], session: Session) -> None:
        await self.order_facts.replace_one({"_id": fact["_id"]}, fact, upsert=True, session=session)

    async def update_user(
        self,
        user_id: str,
        *,
        set_: dict[str, Any] | None = None,
        set_once: dict[str, Any] | None = None,
        add_to: dict[str, Any] | None = None,
        latest: dict[str, datetime] | None = None,
        session: Session,
    ) -> dict[str, Any]:
        """Update a user's facts (created on first sight); the document after the update."""
        update: dict[str, Any] = {}
        if set_:
            update["$set"] = set_
        if set_once:
            update["$min"] = set_once  # the earliest time wins, whatever order events come in
        if latest:
            update["$max"] = latest
        if add_to:
            update["$addToSet"] = add_to
        doc = await self.user_facts.find_one_and_update(
            {"_id": user_id},
            update or {"$setOnInsert": {}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
            session=session,
        )
        return dict(doc or {})

    async def upsert_product(
        self, product_id: str, fields: dict[str, Any], session: Session
    ) -> None:
        await self.products.update_one(
            {"_id": product_id}, {"$set": fields}, upsert=True, session=session
        )

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
