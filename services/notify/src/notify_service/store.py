"""Mongo storage of the notify service: the users replica and the notifications.

`notifications` holds one row per (event, channel, recipient), keyed by `dedupe_key` (unique):
the handler writes it in its transaction (in-app `sent`, other channels `pending`); the delivery
worker leases pending rows, sends them and records `sent` or, after its retries, `failed`.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from kit.mongo import IndexSpec
from kit.tracing import inject_traceparent
from notify_service.domain import Contact, Delivery

USERS = "users"
NOTIFICATIONS = "notifications"

INDEXES: list[IndexSpec] = [
    IndexSpec(
        NOTIFICATIONS, [("user_id", ASCENDING), ("created_at", DESCENDING)], name="user_recent"
    ),
    # One notification per (event, channel, recipient): a redelivered event never sends twice.
    IndexSpec(NOTIFICATIONS, "dedupe_key", unique=True, name="dedupe_unique"),
    # The delivery worker's `status: pending` (few rows): single-field, see kit.mongo.
    IndexSpec(NOTIFICATIONS, "status", name="status"),
    IndexSpec(USERS, [("role", ASCENDING), ("deleted", ASCENDING)], name="role"),
]

type Session = AsyncClientSession | None


def _contact(doc: dict[str, Any]) -> Contact:
    return Contact(
        user_id=doc["_id"],
        email=doc.get("email"),
        phone=doc.get("phone"),
        role=doc.get("role", "Customer"),
        channels=tuple(doc.get("channels") or ()),
        partial_fulfillment=doc.get("partial_fulfillment", "ask"),
        deleted=bool(doc.get("deleted") or doc.get("disabled")),
    )


class NotifyStore:
    """The notify service's collections."""

    def __init__(self, db: AsyncDatabase[Any]) -> None:
        self.db = db
        self.users = db[USERS]
        self.notifications = db[NOTIFICATIONS]

    # -- users replica -------------------------------------------------------------------------

    async def upsert_user(
        self,
        user_id: str,
        fields: dict[str, Any],
        session: Session,
        *,
        defaults: dict[str, Any] | None = None,
    ) -> None:
        """Set replica fields of a user (created when unknown: events may arrive out of order);
        `defaults` only apply to a user seen for the first time."""
        update: dict[str, Any] = {"$set": fields}
        if defaults:
            update["$setOnInsert"] = defaults
        await self.users.update_one({"_id": user_id}, update, upsert=True, session=session)

    async def contact(self, user_id: str, session: Session = None) -> Contact | None:
        doc = await self.users.find_one({"_id": user_id}, session=session)
        return _contact(doc) if doc else None

    async def contacts_with_role(self, role: str, session: Session = None) -> list[Contact]:
        cursor = self.users.find({"role": role, "deleted": {"$ne": True}}, session=session)
        return [_contact(doc) async for doc in cursor]

    async def profile_complete(self, user_id: str) -> bool:
        """True when the replica says the user's profile is complete, or the user is gone."""
        doc = await self.users.find_one({"_id": user_id}) or {}
        return bool(doc.get("is_profile_complete") or doc.get("deleted") or doc.get("disabled"))

    async def user_flags(self, user_id: str, session: Session) -> dict[str, Any]:
        return await self.users.find_one({"_id": user_id}, session=session) or {}

    # -- notifications -------------------------------------------------------------------------

    async def add(
        self,
        delivery: Delivery,
        *,
        now: datetime,
        event_id: str,
        correlation_id: str,
        session: Session,
        hold: timedelta | None = None,
    ) -> bool:
        """Write a notification unless its dedupe key exists; True when it is new.

        `hold`: keep it pending that long before the worker may deliver it (in-app too)."""
        row = asdict(delivery)
        row["_id"] = row.pop("notification_id")
        # In-app is delivered by being stored, unless it is held for a later check.
        in_app = delivery.channel == "inApp" and hold is None
        row |= {
            "status": "sent" if in_app else "pending",
            "attempts": 0,
            "created_at": now,
            "next_attempt_at": now + hold if hold is not None else now,
            # A held row is not in the inbox until it is released (or ever, when skipped).
            "hidden": hold is not None,
            "lease_until": None,
            "sent_at": now if in_app else None,
            "read_at": None,
            "last_error": None,
            "event_id": event_id,
            "correlation_id": correlation_id,
            # The worker delivers it later, outside this handler: it continues this trace.
            "trace": inject_traceparent({}),
        }
        result = await self.notifications.update_one(
            {"dedupe_key": delivery.dedupe_key},
            {"$setOnInsert": row},
            upsert=True,
            session=session,
        )
        return result.upserted_id is not None

    async def lease_due(self, now: datetime, lease: timedelta) -> dict[str, Any] | None:
        """Claim one pending notification that is due and not leased by another worker.

        A read finds a candidate first, so a pass with nothing due sends no write command (a
        findAndModify that matches nothing is still one, taking write locks); the claim repeats
        the conditions, and a row another worker claimed in between sends this one on to the
        next candidate."""
        due = {
            "status": "pending",
            "next_attempt_at": {"$lte": now},
            "$or": [{"lease_until": None}, {"lease_until": {"$lt": now}}],
        }
        while True:
            candidate = await self.notifications.find_one(
                due, {"_id": 1}, sort=[("next_attempt_at", ASCENDING)]
            )
            if candidate is None:
                return None
            claimed = await self.notifications.find_one_and_update(
                {"_id": candidate["_id"], **due},
                {"$set": {"lease_until": now + lease}},
                return_document=ReturnDocument.AFTER,
            )
            if claimed is not None:
                return claimed

    async def mark_sent(self, notification_id: str, now: datetime, session: Session) -> None:
        await self.notifications.update_one(
            {"_id": notification_id, "status": "pending"},
            {
                "$set": {"status": "sent", "sent_at": now, "lease_until": None, "hidden": False},
                "$inc": {"attempts": 1},
            },
            session=session,
        )

    async def mark_skipped(self, notification_id: str, reason: str, now: datetime) -> None:
        await self.notifications.update_one(
            {"_id": notification_id, "status": "pending"},
            {"$set": {"status": "skipped", "last_error": reason, "skipped_at": now}},
        )

    async def mark_retry(self, notification_id: str, error: str, next_attempt_at: datetime) -> None:
        await self.notifications.update_one(
            {"_id": notification_id, "status": "pending"},
            {
                "$set": {
                    "last_error": error,
                    "next_attempt_at": next_attempt_at,
                    "lease_until": None,
                },
                "$inc": {"attempts": 1},
            },
        )

    async def mark_failed(
        self, notification_id: str, error: str, now: datetime, session: Session
    ) -> None:
        await self.notifications.update_one(
            {"_id": notification_id, "status": "pending"},
            {
                "$set": {
                    "status": "failed",
                    "last_error": error,
                    "failed_at": now,
                    "hidden": False,
                },
                "$inc": {"attempts": 1},
            },
            session=session,
        )

    async def inbox(
        self, user_id: str, *, limit: int, after: tuple[datetime, str] | None
    ) -> list[dict[str, Any]]:
        """A user's notifications, newest first, from after the cursor position."""
        query: dict[str, Any] = {"user_id": user_id, "hidden": {"$ne": True}}
        if after is not None:
            at, last_id = after
            query["$or"] = [
                {"created_at": {"$lt": at}},
                {"created_at": at, "_id": {"$lt": last_id}},
            ]
        cursor = (
            self.notifications.find(query)
            .sort([("created_at", DESCENDING), ("_id", DESCENDING)])
            .limit(limit + 1)
        )
        return [doc async for doc in cursor]

    async def get(self, notification_id: str) -> dict[str, Any] | None:
        return await self.notifications.find_one({"_id": notification_id})

    async def mark_read(self, notification_id: str, now: datetime) -> dict[str, Any] | None:
        """Set `read_at` once (a second call keeps the first time)."""
        await self.notifications.update_one(
            {"_id": notification_id, "read_at": None}, {"$set": {"read_at": now}}
        )
        return await self.get(notification_id)
