"""Mongo storage of the notify service: the users replica and the notifications.

`notifications` holds one row per (event, channel, recipient), keyed by `dedupe_key` (unique):
the handler inserts an event's rows with one insert_many in its transaction (in-app `sent`,
other channels `pending` and born leased to the handler's own delivery worker); the worker sends
them and records `sent` or, after its retries, `failed`, one update per outcome.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timedelta

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.errors import BulkWriteError

from bus import AlreadyHandled
from bus.documents import OUTBOX
from kit.mongo import Db, Doc, IndexSpec, Session
from kit.tracing import inject_traceparent
from notify_service.domain import Contact, Delivery

USERS = "users"
NOTIFICATIONS = "notifications"
DUPLICATE_KEY = 11000

INDEXES: list[IndexSpec] = [
    IndexSpec(
        NOTIFICATIONS, [("user_id", ASCENDING), ("created_at", DESCENDING)], name="user_recent"
    ),
    # One notification per (event, channel, recipient): a redelivered event never sends twice.
    IndexSpec(NOTIFICATIONS, "dedupe_key", unique=True, name="dedupe_unique"),
    # The delivery worker's `status: pending` (few rows): single-field, see kit.mongo.
    IndexSpec(NOTIFICATIONS, "status", name="status"),
    # The relay's recovery pass looks for rows whose outcome event outlived its process.
    IndexSpec(NOTIFICATIONS, f"{OUTBOX}.created_at", name="outbox_pending"),
    IndexSpec(USERS, [("role", ASCENDING), ("deleted", ASCENDING)], name="role"),
]

# A notification as stored (and as the worker holds it in memory).
type Row = Doc


def _contact(doc: Doc) -> Contact:
    return Contact(
        user_id=doc["_id"],
        email=doc.get("email"),
        phone=doc.get("phone"),
        role=doc.get("role", "Customer"),
        channels=tuple(doc.get("channels") or ()),
        partial_fulfillment=doc.get("partial_fulfillment", "ask"),
        deleted=bool(doc.get("deleted") or doc.get("disabled")),
    )


def _held(notification_id: str, owner: str) -> Doc:
    return {"_id": notification_id, "status": "pending", "lease_owner": owner}


def notification_row(
    delivery: Delivery,
    *,
    now: datetime,
    event_id: str,
    correlation_id: str,
    hold: timedelta | None = None,
    owner: str | None = None,
    lease: timedelta = timedelta(0),
) -> Row:
    """The stored row of one delivery.

    In-app is delivered by being stored (`sent`, nothing to lease), unless it is `hold`: kept
    pending and hidden that long, then released or dropped by the worker. Other channels are
    `pending`; with an `owner` (the delivery worker of the writing process) they are born leased
    to it until `lease` after they are due, so it sends them without claiming them, and any
    worker may claim them once that lease ran out (the owner died).
    """
    row = asdict(delivery)
    row["_id"] = row.pop("notification_id")
    delivered = delivery.channel == "inApp" and hold is None
    due = now + hold if hold is not None else now
    leased = owner is not None and not delivered
    row |= {
        "status": "sent" if delivered else "pending",
        "attempts": 0,
        "created_at": now,
        "next_attempt_at": due,
        # A held row is not in the inbox until it is released (or ever, when skipped).
        "hidden": hold is not None,
        "lease_owner": owner if leased else None,
        "lease_until": due + lease if leased else None,
        "sent_at": now if delivered else None,
        "read_at": None,
        "last_error": None,
        "event_id": event_id,
        "correlation_id": correlation_id,
        # The worker delivers it later, outside this handler: it continues this trace.
        "trace": inject_traceparent({}),
    }
    return row


class NotifyStore:
    """The notify service's collections."""

    def __init__(self, db: Db) -> None:
        self.db = db
        self.users = db[USERS]
        self.notifications = db[NOTIFICATIONS]

    # -- users replica -------------------------------------------------------------------------

    async def upsert_user(
        self,
        user_id: str,
        fields: Doc,
        session: Session,
        *,
        defaults: Doc | None = None,
    ) -> None:
        """Set replica fields of a user (created when unknown: events may arrive out of order);
        `defaults` only apply to a user seen for the first time."""
        update: Doc = {"$set": fields}
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

    async def user_flags(self, user_id: str, session: Session) -> Doc:
        return await self.users.find_one({"_id": user_id}, session=session) or {}

    # -- notifications -------------------------------------------------------------------------

    async def insert_new(self, rows: list[Row], session: Session, *, may_exist: bool) -> list[Row]:
        """Insert the rows not stored yet (one insert_many); the rows inserted.

        `may_exist=False` when every row's dedupe key is scoped by the event being handled: the
        rows are then the handler's record of the event (no inbox row, no read): a second run
        hits the unique `_id` and raises `AlreadyHandled`, which aborts the transaction and skips
        the delivery. A key of a wider scope (the profile nudge: once per user) may have been
        written by another event: read first. In a transaction a duplicate key aborts
        everything, so it cannot be caught and skipped row by row.
        """
        fresh = list({row["_id"]: row for row in rows}.values())
        if may_exist and fresh:
            ids = [row["_id"] for row in fresh]
            cursor = self.notifications.find({"_id": {"$in": ids}}, {"_id": 1}, session=session)
            stored = {doc["_id"] async for doc in cursor}
            fresh = [row for row in fresh if row["_id"] not in stored]
        if fresh:
            try:
                await self.notifications.insert_many(fresh, session=session)
            except BulkWriteError as exc:
                errors = exc.details.get("writeErrors", [])
                if may_exist or not errors or any(e.get("code") != DUPLICATE_KEY for e in errors):
                    raise  # a row read as missing was written meanwhile (run again), or worse
                raise AlreadyHandled(f"notifications of {fresh[0]['event_id']}") from exc
        return fresh

    async def lease_due(self, now: datetime, lease: timedelta, owner: str) -> Doc | None:
        """Claim one pending notification that is due and whose lease (if any) ran out.

        Only for rows no worker holds: a handler's rows are born leased to its own process's
        worker, which sends them without this. What is left here: a dead process's rows after
        their lease, rows written without an owner. A read finds a candidate first, so a pass
        with nothing due sends no write command (a findAndModify that matches nothing is still
        one, taking write locks); the claim repeats the conditions, and a row another worker
        claimed in between sends this one on to the next candidate."""
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
            claimed: Doc | None = await self.notifications.find_one_and_update(
                {"_id": candidate["_id"], **due},
                {"$set": {"lease_until": now + lease, "lease_owner": owner}},
                return_document=ReturnDocument.AFTER,
            )
            if claimed is not None:
                return claimed

    # Each outcome below is one update, and only of a row still pending and still held by the
    # worker recording it: a worker whose lease ran out and was claimed by another records
    # nothing (False), so a notification gets one outcome and one event whatever happens.

    async def mark_sent(
        self, notification_id: str, owner: str, now: datetime, rows: list[Doc]
    ) -> bool:
        """Sent, with its NotificationSent riding in the row's own outbox (one write)."""
        result = await self.notifications.update_one(
            _held(notification_id, owner),
            {
                "$set": {"status": "sent", "sent_at": now, "lease_until": None, "hidden": False},
                "$inc": {"attempts": 1},
                **({"$push": {OUTBOX: {"$each": rows}}} if rows else {}),
            },
        )
        return result.modified_count == 1

    async def mark_skipped(
        self, notification_id: str, owner: str, reason: str, now: datetime
    ) -> bool:
        result = await self.notifications.update_one(
            _held(notification_id, owner),
            {
                "$set": {
                    "status": "skipped",
                    "last_error": reason,
                    "skipped_at": now,
                    "lease_until": None,
                }
            },
        )
        return result.modified_count == 1

    async def mark_retry(
        self,
        notification_id: str,
        owner: str,
        error: str,
        next_attempt_at: datetime,
        lease_until: datetime,
    ) -> bool:
        """Count the attempt and keep the row leased past its next try: the same worker tries
        again (from memory, no claim), another one only if this one died meanwhile."""
        result = await self.notifications.update_one(
            _held(notification_id, owner),
            {
                "$set": {
                    "last_error": error,
                    "next_attempt_at": next_attempt_at,
                    "lease_until": lease_until,
                },
                "$inc": {"attempts": 1},
            },
        )
        return result.modified_count == 1

    async def mark_failed(
        self,
        notification_id: str,
        owner: str,
        error: str,
        now: datetime,
        rows: list[Doc],
    ) -> bool:
        """Failed, with its NotificationFailed riding in the row's own outbox (one write)."""
        result = await self.notifications.update_one(
            _held(notification_id, owner),
            {
                "$set": {
                    "status": "failed",
                    "last_error": error,
                    "failed_at": now,
                    "lease_until": None,
                    "hidden": False,
                },
                "$inc": {"attempts": 1},
                **({"$push": {OUTBOX: {"$each": rows}}} if rows else {}),
            },
        )
        return result.modified_count == 1

    async def inbox(
        self, user_id: str, *, limit: int, after: tuple[datetime, str] | None
    ) -> list[Doc]:
        """A user's notifications, newest first, from after the cursor position."""
        query: Doc = {"user_id": user_id, "hidden": {"$ne": True}}
        if after is not None:
            at, last_id = after
            query["$or"] = [
                {"created_at": {"$lt": at}},
                {"created_at": at, "_id": {"$lt": last_id}},
            ]
        cursor = (
            self.notifications.find(query, {OUTBOX: 0})
            .sort([("created_at", DESCENDING), ("_id", DESCENDING)])
            .limit(limit + 1)
        )
        return [doc async for doc in cursor]

    async def get(self, notification_id: str) -> Doc | None:
        return await self.notifications.find_one({"_id": notification_id})

    async def mark_read(self, notification_id: str, now: datetime) -> Doc | None:
        """Set `read_at` once (a second call keeps the first time)."""
        await self.notifications.update_one(
            {"_id": notification_id, "read_at": None}, {"$set": {"read_at": now}}
        )
        return await self.get(notification_id)
