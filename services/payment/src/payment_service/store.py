"""Mongo storage of the payment service: `payments`, one document per order.

A payment (snake_case): `_id` (payment id), `order_id` (unique), `user_id`, `amount_cents`,
`currency`, `payment_method_id`, `status` (domain.PaymentStatus), `authorization_id`,
`captured_cents`, `refunded_cents` (what refunds paid back so far), `refunds` {return id:
{return_id, amount_cents, status (refunded | failed), reason, at, idempotency_key, calls
[{number, at, outcome, error}], cause}} (one per received return, decided once), `fraud`
{score, reasons, flagged} (the last verdict), `flagged_charges`
[{payment_method_id, amount_cents, cause}] (every card and amount the rules flagged, and the
PaymentRequested they flagged it for: what a review can clear), `closed` (the order ended: a
later authorization is voided at once), `outcomes` {request key: {cause, events}} (what each
PaymentRequested decided, so a duplicate emits nothing new), `attempts` [{number (per order,
across customer retries), request (the PaymentRequested attempt), payment_method_id,
idempotency_key, at, outcome, error, authorization_id}] (one per provider call), `created_at`,
`updated_at`.

`PaymentStore(db)` reads and writes them. Each step of a command is one write of the payment,
without a transaction (a single-document step, `bus.documents`): an insert on first sight, else
one conditional update; the status, the decision, the attempts, the fields a step changes, the
events it emits (`outbox`) and the handled event's id (`processed`) go together. An older
version kept attempts in an `attempts` collection (`_id` = `<payment id>:<number>`); a payment
without the `attempts` field is read from there, and its next write carries the whole list over.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pymongo.errors import DuplicateKeyError

from bus.documents import OUTBOX, PROCESSED, step_update
from kit.mongo import Db, Doc, IndexSpec, as_utc
from kit.transactions import Conflict
from payment_service.domain import PaymentStatus

PAYMENTS = "payments"

INDEXES: list[IndexSpec] = [
    IndexSpec("payments", "order_id", unique=True, name="order_unique"),
    # The relay's recovery pass looks for payments whose events outlived their process.
    IndexSpec("payments", f"{OUTBOX}.created_at", name="outbox_pending"),
    # The fraud rules' look at a customer's recent payments: single-field, see kit.mongo.
    IndexSpec("payments", "user_id", name="user"),
]

# Indexes this service no longer declares (attempts were also unique on (payment_id, number)):
# dropped at start-up where an older version made them.
LEGACY_INDEXES: dict[str, tuple[str, ...]] = {"attempts": ("number",)}


def new_payment(payment_id: str, order_id: str, user_id: str, now: datetime, **fields: Any) -> Doc:
    """A payment as first seen: pending, open, nothing decided or tried, then `fields`."""
    return {
        "_id": payment_id,
        "order_id": order_id,
        "user_id": user_id,
        "status": PaymentStatus.PENDING.value,
        "amount_cents": 0,
        "currency": "USD",
        "closed": False,
        "outcomes": {},
        "attempts": [],
        "created_at": now,
        "updated_at": now,
        **fields,
    }


def numbered(calls: Sequence[Doc]) -> list[Doc]:
    """Calls by number, one per number (a rerun remembering a call already stored adds none)."""
    return sorted({int(c["number"]): c for c in calls}.values(), key=lambda c: int(c["number"]))


class PaymentStore:
    """The service's payments (one per order) and what an older version left beside them."""

    def __init__(self, db: Db) -> None:
        self.db = db
        self.payments = db[PAYMENTS]

    async def drop_legacy_indexes(self) -> list[str]:
        """Drop the indexes of `LEGACY_INDEXES` that exist; the ones dropped."""
        dropped: list[str] = []
        for collection, names in LEGACY_INDEXES.items():
            existing = await self.db[collection].index_information()
            for name in names:
                if name in existing:
                    await self.db[collection].drop_index(name)
                    dropped.append(f"{collection}.{name}")
        return dropped

    async def payment_for(self, order_id: str) -> Doc | None:
        """The order's payment, without its pending events."""
        doc: Doc | None = await self.payments.find_one({"order_id": order_id}, {OUTBOX: 0})
        return doc

    async def insert(self, doc: Doc, rows: list[Doc], processed: str) -> None:
        """Store a payment seen for the first time (the unique `order_id` keeps it single) with
        the events of the step in its outbox and the handled event's id; `Conflict` when another
        step created it meanwhile."""
        try:
            await self.payments.insert_one(doc | {OUTBOX: rows, PROCESSED: [processed]})
        except DuplicateKeyError as exc:
            raise Conflict(f"payment of order {doc['order_id']} created concurrently") from exc

    async def update(
        self,
        payment: Doc,
        rows: list[Doc],
        processed: str,
        *,
        expect: Doc | None = None,
        **fields: Any,
    ) -> bool:
        """Set `fields` on the payment as it was read, append the step's events and the handled
        event's id (a single-document step, `bus.documents`): only while its status and `closed`
        (and the fields of `expect`) are still what the step decided on and the event was not
        handled; False otherwise (the step runs again from a fresh read).
        """
        result = await self.payments.update_one(
            {
                "_id": payment["_id"],
                "status": payment["status"],
                "closed": True if payment.get("closed") else {"$ne": True},
                PROCESSED: {"$ne": processed},
                **(expect or {}),
            },
            step_update(fields, rows, processed),
        )
        return result.matched_count == 1

    async def attempts(self, payment: Doc) -> list[Doc]:
        """The payment's provider calls by number (from the legacy collection for an older
        one)."""
        if "attempts" in payment:
            stored: list[Doc] = payment["attempts"]
        else:
            prefix = payment["_id"]
            cursor = self.db.attempts.find(
                {"_id": {"$gte": f"{prefix}:", "$lt": f"{prefix};"}}, {"_id": 0}
            )
            stored = [doc async for doc in cursor]
        return sorted(stored, key=lambda doc: int(doc["number"]))

    async def user_history(
        self, user_id: str, *, except_order: str, since: datetime
    ) -> list[tuple[datetime, int]]:
        """(created_at, amount) of the customer's other payments since `since` (fraud rules),
        timezone-aware for the domain's arithmetic."""
        cursor = self.payments.find(
            {"user_id": user_id, "order_id": {"$ne": except_order}, "created_at": {"$gte": since}},
            {"created_at": 1, "amount_cents": 1},
        )
        return [
            (as_utc(doc["created_at"]), int(doc.get("amount_cents", 0))) async for doc in cursor
        ]
