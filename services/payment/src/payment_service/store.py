"""Mongo storage of the payment service: `payments` (one per order) and `attempts` (one per call).

A payment (snake_case): `_id` (payment id), `order_id` (unique), `user_id`, `amount_cents`,
`currency`, `payment_method_id`, `status` (domain.PaymentStatus), `authorization_id`,
`captured_cents`, `fraud` {score, reasons, flagged} (the last verdict), `flagged_charges`
[{payment_method_id, amount_cents, cause}] (every card and amount the rules flagged, and the
PaymentRequested they flagged it for: what a review can clear), `closed` (the order ended: a
later authorization is voided at once), `outcomes` {request key: {cause, events}} (what each
PaymentRequested decided, so a duplicate emits nothing new), `created_at`, `updated_at`.
An attempt: `_id` = `<payment id>:<number>`, `payment_id`, `number` (per order, across customer
retries), `request` (the PaymentRequested attempt), `payment_method_id`, `at`, `outcome`, `error`.
The composite `_id` is the attempt's key: no compound unique index to check on each insert.

These writes run outside the handler's transaction (session None), on purpose: see handlers.py.
Every one of them is idempotent (upserts by key, conditional status moves).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from contracts import new_id
from kit.mongo import IndexSpec
from payment_service.domain import PaymentStatus, sources

type Db = AsyncDatabase[Any]
type Doc = dict[str, Any]

INDEXES: list[IndexSpec] = [
    IndexSpec("payments", "order_id", unique=True, name="order_unique"),
    # The fraud rules' look at a customer's recent payments: single-field, see kit.mongo.
    IndexSpec("payments", "user_id", name="user"),
]

# Indexes this service no longer declares (attempts were also unique on (payment_id, number);
# their composite `_id` is the key now): dropped at start-up where an older version made them.
LEGACY_INDEXES: dict[str, tuple[str, ...]] = {"attempts": ("number",)}


async def drop_legacy_indexes(db: Db) -> list[str]:
    """Drop the indexes of `LEGACY_INDEXES` that exist; the ones dropped."""
    dropped: list[str] = []
    for collection, names in LEGACY_INDEXES.items():
        existing = await db[collection].index_information()
        for name in names:
            if name in existing:
                await db[collection].drop_index(name)
                dropped.append(f"{collection}.{name}")
    return dropped


async def payment_for(db: Db, order_id: str) -> Doc | None:
    doc: Doc | None = await db.payments.find_one({"order_id": order_id})
    return doc


async def ensure_payment(db: Db, order_id: str, user_id: str, now: datetime, **fields: Any) -> Doc:
    """The order's payment, created pending on first sight (the unique index keeps it single),
    then with `fields` too (what the first request brings: one write instead of two).

    Reads first: a re-run of a handler whose decision is already stored must write nothing
    outside its transaction (the embedded server would call that a conflict, again and again).
    """
    existing = await payment_for(db, order_id)
    if existing is not None:
        return existing
    for _ in range(2):  # two first sights at once: one inserts, the other reads it
        try:
            doc: Doc | None = await db.payments.find_one_and_update(
                {"order_id": order_id},
                {
                    "$setOnInsert": {
                        "_id": new_id(),
                        "user_id": user_id,
                        "status": PaymentStatus.PENDING.value,
                        "amount_cents": 0,
                        "currency": "USD",
                        "closed": False,
                        "outcomes": {},
                        "created_at": now,
                        "updated_at": now,
                        **fields,
                    }
                },
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
            if doc is not None:
                return doc
        except DuplicateKeyError:
            continue
    raise RuntimeError(f"payment for {order_id} neither inserted nor found")


async def move(
    db: Db,
    payment_id: str,
    target: PaymentStatus,
    now: datetime,
    *,
    unless_closed: bool = False,
    **fields: Any,
) -> Doc | None:
    """Move to `target` only from a state the machine allows (and, `unless_closed`, only while
    the order has not ended); the payment after, or None."""
    allowed = [s.value for s in sources(target)]
    query: Doc = {"_id": payment_id, "status": {"$in": allowed}}
    if unless_closed:
        query["closed"] = {"$ne": True}
    doc: Doc | None = await db.payments.find_one_and_update(
        query,
        {"$set": {"status": target.value, "updated_at": now, **fields}},
        return_document=ReturnDocument.AFTER,
    )
    return doc


async def set_fields(db: Db, payment_id: str, now: datetime, **fields: Any) -> Doc:
    doc: Doc | None = await db.payments.find_one_and_update(
        {"_id": payment_id},
        {"$set": {"updated_at": now, **fields}},
        return_document=ReturnDocument.AFTER,
    )
    assert doc is not None, f"payment {payment_id} vanished"
    return doc


async def close(db: Db, order_id: str, user_id: str, reason: str, now: datetime) -> Doc:
    """Mark the order ended (creating a stub when payment never saw it): the payment after."""
    existing = await ensure_payment(db, order_id, user_id, now)
    if existing.get("closed"):
        return existing
    doc: Doc | None = await db.payments.find_one_and_update(
        {"order_id": order_id},
        {"$set": {"closed": True, "closed_reason": reason, "updated_at": now}},
        return_document=ReturnDocument.AFTER,
    )
    assert doc is not None, f"payment for {order_id} vanished"
    return doc


async def attempts(db: Db, payment_id: str) -> list[Doc]:
    """The payment's attempts by number (an `_id` range: `<payment id>:` … `<payment id>;`)."""
    cursor = db.attempts.find({"_id": {"$gte": f"{payment_id}:", "$lt": f"{payment_id};"}})
    return sorted([doc async for doc in cursor], key=lambda doc: int(doc["number"]))


async def record_attempt(db: Db, payment_id: str, number: int, **fields: Any) -> None:
    """One provider call and its outcome (keyed by number: recording it again changes nothing)."""
    await db.attempts.update_one(
        {"_id": f"{payment_id}:{number}"},
        {"$set": {"payment_id": payment_id, "number": number, **fields}},
        upsert=True,
    )


async def user_history(
    db: Db, user_id: str, *, except_order: str, since: datetime
) -> list[tuple[datetime, int]]:
    """(created_at, amount) of the customer's other payments since `since` (fraud rules)."""
    cursor = db.payments.find(
        {"user_id": user_id, "order_id": {"$ne": except_order}, "created_at": {"$gte": since}},
        {"created_at": 1, "amount_cents": 1},
    )
    return [(doc["created_at"], int(doc.get("amount_cents", 0))) async for doc in cursor]


def as_utc(values: Iterable[tuple[datetime, int]]) -> list[tuple[datetime, int]]:
    """Mongo answers naive datetimes (UTC): make them aware for the domain's arithmetic."""
    return [(at if at.tzinfo else at.replace(tzinfo=UTC), amount) for at, amount in values]
