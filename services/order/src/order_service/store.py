"""Mongo storage of the order service (`OrderStore`): orders (optimistic concurrency) and
idempotency keys.

An order is saved whole with an update conditional on its `version`: two writers that loaded the
same version cannot both win, the loser gets `ConcurrentUpdate` and reloads (inside a handler the
bus runs the step again; an HTTP route answers from the reloaded order). A saga step is a
single-document step (`bus.documents`): the same update appends the events it raised to the
order's `outbox` and the handled event's id to its `processed`. Documents use snake_case.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.errors import DuplicateKeyError

from bus.documents import (
    OUTBOX,
    PROCESSED,
    DocumentOutbox,
    already_processed,
    pending_rows,
    processed_push,
    step_update,
)
from contracts import Envelope
from kit.mongo import Db, Doc, IndexSpec, Session, as_utc
from kit.transactions import Conflict
from order_service.domain import Order, OrderReturn, ReturnStatus, Status

ORDERS = "orders"
IDEMPOTENCY = "idempotency_keys"
IDEMPOTENCY_TTL_SECONDS = 24 * 3600  # api.md: an Idempotency-Key is kept 24 h per user

# Created at start-up by the service lifespan (idempotent).
INDEXES: list[IndexSpec] = [
    IndexSpec(ORDERS, [("user_id", ASCENDING), ("created_at", DESCENDING)], name="user_recent"),
    IndexSpec(ORDERS, [("status", ASCENDING), ("created_at", DESCENDING)], name="status_recent"),
    IndexSpec(ORDERS, [("status", ASCENDING), ("deadline", ASCENDING)], name="status_deadline"),
    # The relay's recovery pass looks for orders whose events outlived their process.
    IndexSpec(ORDERS, f"{OUTBOX}.created_at", name="outbox_pending"),
    # Returns live in their order: found by id (approve, reject, receive) and listed by status
    # for the Managers' queue. Sparse: an order without returns has no `returns` field
    # (`to_doc`), so checkout's orders are not in these indexes at all.
    IndexSpec(ORDERS, "returns.return_id", sparse=True, name="return_id"),
    IndexSpec(
        ORDERS,
        [("returns.status", ASCENDING), ("returns.created_at", DESCENDING)],
        sparse=True,
        name="returns_status_recent",
    ),
    IndexSpec(IDEMPOTENCY, "created_at", ttl_seconds=IDEMPOTENCY_TTL_SECONDS, name="expiry_ttl"),
]


class OrderNotFound(Exception):
    """No order with this id."""

    def __init__(self, order_id: str) -> None:
        super().__init__(f"order {order_id} not found")
        self.order_id = order_id


class ConcurrentUpdate(Conflict):
    """Another writer saved the order after it was loaded (the stored version moved on)."""

    def __init__(self, order_id: str, expected_version: int) -> None:
        super().__init__(f"order {order_id} changed since version {expected_version}")
        self.order_id = order_id
        self.expected_version = expected_version


def to_doc(order: Order) -> Doc:
    """The stored document of an order (its raised events are not part of it). What comes after
    CONFIRMED (fulfilment, returns, refunds) is left out until there is some: checkout's documents
    stay as they were, and out of the returns' sparse indexes. Those fields only ever grow, so a
    `$set` of the document never needs to unset them."""
    empty = {
        name
        for name, value in (
            ("fulfilment", order.fulfilment),
            ("returns", order.returns),
            ("refunded_cents", order.refunded_cents),
        )
        if not value
    }
    return {"_id": order.order_id, **order.model_dump(exclude=empty)}


def from_doc(doc: Doc) -> Order:
    """An order from its stored document."""
    return Order.model_validate(doc)


def request_hash(body: Any) -> str:
    """A stable digest of a request body (key order does not matter)."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def idempotency_id(user_id: str, key: str) -> str:
    """One row per (user, key), keyed by `_id`: its uniqueness is the primary key's, which every
    server enforces cheaply (the embedded one scans the collection for a compound unique index,
    bench/README.md)."""
    return f"{user_id}:{key}"


def _past_deadline(statuses: Sequence[Status], now: datetime) -> Doc:
    """Orders waiting in `statuses` whose deadline is `now` or earlier (the status_deadline
    index)."""
    # `$ne: None`: a CONFIRMED order waits only while a return does (its deadline is null
    # otherwise), and the embedded server, unlike MongoDB, counts null as before any date.
    return {"status": {"$in": list(statuses)}, "deadline": {"$ne": None, "$lte": now}}


@dataclass(frozen=True)
class ReturnRow:
    """A return as the returns queue lists it, with the order it belongs to."""

    order_id: str
    user_id: str
    currency: str
    ret: OrderReturn


@dataclass(frozen=True)
class IdempotentRequest:
    """What a key was first used for, and the answer given then."""

    order_id: str
    request_hash: str
    response: Doc


class OrderStore:
    """Orders (saved whole, conditional on their version) and the idempotency keys of placing."""

    def __init__(self, db: Db) -> None:
        self.db = db

    # --- orders -------------------------------------------------------------------------------

    async def save(
        self,
        order: Order,
        session: Session,
        *,
        events: Sequence[Envelope[Any]] = (),
        processed: str | None = None,
        outbox: DocumentOutbox | None = None,
    ) -> None:
        """Insert a new order or update the stored one if nobody saved it since it was loaded.

        `events` ride in the order's outbox and `processed` joins its handled ids, in the same
        write; `outbox` hands the rows to the relay once the write is durable.
        """
        expected = order.version
        state = to_doc(order) | {"version": expected + 1}
        rows = pending_rows(events)
        if expected == 0:
            try:
                doc = state | {OUTBOX: rows, PROCESSED: [processed] if processed else []}
                await self.db[ORDERS].insert_one(doc, session=session)
            except DuplicateKeyError as exc:
                raise ConcurrentUpdate(order.order_id, expected) from exc
        else:
            del state["_id"]
            result = await self.db[ORDERS].update_one(
                {"_id": order.order_id, "version": expected},
                step_update(state, rows, processed),
                session=session,
            )
            if result.matched_count != 1:
                raise ConcurrentUpdate(order.order_id, expected)
        order.version = expected + 1
        if outbox is not None:
            outbox.written(order.order_id, rows, session)

    async def get(self, order_id: str, session: Session = None) -> Order | None:
        """An order by id, or None."""
        doc = await self._stored(order_id, session)
        return None if doc is None else from_doc(doc)

    async def _stored(self, order_id: str, session: Session = None) -> Doc | None:
        # Without its pending events: nothing reading an order needs them.
        doc: Doc | None = await self.db[ORDERS].find_one(
            {"_id": order_id}, {OUTBOX: 0}, session=session
        )
        return doc

    async def note_processed(self, order_id: str, processed: str) -> None:
        """Add an inbox id to the order's handled ids without changing it (no version bump:
        noting an id commutes with every step)."""
        await self.db[ORDERS].update_one({"_id": order_id}, {"$push": processed_push(processed)})

    async def get_for_step(self, order_id: str, processed: str) -> tuple[Order | None, bool]:
        """An order by id (or None), and whether its steps handled the inbox id `processed`."""
        doc = await self._stored(order_id)
        if doc is None:
            return None, False
        return from_doc(doc), already_processed(doc, processed)

    async def load(self, order_id: str, session: Session = None) -> Order:
        """An order by id; `OrderNotFound` when there is none."""
        order = await self.get(order_id, session)
        if order is None:
            raise OrderNotFound(order_id)
        return order

    async def due(
        self,
        statuses: Sequence[Status],
        now: datetime,
        limit: int = 100,
        *,
        exclude: Sequence[str] = (),
    ) -> list[str]:
        """Ids of orders waiting in `statuses` whose deadline has passed, oldest deadline first
        (but the `exclude`d ones: the sweeper's quarantined rows)."""
        query = _past_deadline(statuses, now)
        if exclude:
            query["_id"] = {"$nin": list(exclude)}
        found = self.db[ORDERS].find(query, {"_id": 1}).sort("deadline", ASCENDING).limit(limit)
        return [doc["_id"] async for doc in found]

    async def count_by_status(self) -> dict[str, int]:
        """Orders per status (one aggregation over the status index)."""
        cursor = await self.db[ORDERS].aggregate([{"$group": {"_id": "$status", "n": {"$sum": 1}}}])
        return {str(row["_id"]): int(row["n"]) async for row in cursor}

    async def past_deadline(
        self, statuses: Sequence[Status], now: datetime
    ) -> tuple[int, datetime | None]:
        """How many orders waiting in `statuses` are past their deadline, and the earliest of
        those deadlines (None when there is none): what the sweeper has yet to close."""
        query = _past_deadline(statuses, now)
        count = await self.db[ORDERS].count_documents(query)
        oldest = await self.db[ORDERS].find_one(
            query, {"deadline": 1}, sort=[("deadline", ASCENDING)]
        )
        return count, as_utc(oldest["deadline"]) if oldest else None

    async def page(
        self,
        *,
        user_id: str | None,
        status: Status | None,
        after: tuple[datetime, str] | None,
        limit: int,
    ) -> list[Order]:
        """Orders newest first, optionally of one user and/or in one status, after a cursor."""
        query: Doc = {}
        if user_id is not None:
            query["user_id"] = user_id
        if status is not None:
            query["status"] = status
        if after is not None:
            created_at, last_id = after
            query["$or"] = [
                {"created_at": {"$lt": created_at}},
                {"created_at": created_at, "_id": {"$lt": last_id}},
            ]
        found = (
            self.db[ORDERS]
            .find(query, {"audit_logs": 0, "timeline": 0, OUTBOX: 0, PROCESSED: 0})
            .sort([("created_at", DESCENDING), ("_id", DESCENDING)])
            .limit(limit)
        )
        return [from_doc(doc) async for doc in found]

    # --- returns --------------------------------------------------------------------------------

    async def order_of_return(self, return_id: str) -> str | None:
        """The id of the order a return belongs to, or None."""
        doc = await self.db[ORDERS].find_one({"returns.return_id": return_id}, {"_id": 1})
        return None if doc is None else str(doc["_id"])

    async def returns_page(
        self, *, status: ReturnStatus | None, after: tuple[datetime, str] | None, limit: int
    ) -> list[ReturnRow]:
        """Returns of every order newest first, optionally in one status, after a cursor."""
        orders: Doc = {"returns.return_id": {"$exists": True}}
        each: Doc = {}
        if status is not None:
            orders = {"returns.status": status}
            each["returns.status"] = status
        if after is not None:
            created_at, last_id = after
            each["$or"] = [
                {"returns.created_at": {"$lt": created_at}},
                {"returns.created_at": created_at, "returns.return_id": {"$lt": last_id}},
            ]
        pipeline: list[Doc] = [
            {"$match": orders},
            {"$project": {"user_id": 1, "currency": 1, "returns": 1}},
            {"$unwind": "$returns"},
            {"$match": each},
            {"$sort": {"returns.created_at": DESCENDING, "returns.return_id": DESCENDING}},
            {"$limit": limit},
        ]
        found = await self.db[ORDERS].aggregate(pipeline)
        return [
            ReturnRow(
                doc["_id"],
                doc["user_id"],
                doc["currency"],
                OrderReturn.model_validate(doc["returns"]),
            )
            async for doc in found
        ]

    # --- idempotency keys ---------------------------------------------------------------------

    async def remember_request(
        self,
        *,
        user_id: str,
        key: str,
        body_hash: str,
        order_id: str,
        response: Doc,
        now: datetime,
        session: Session,
    ) -> IdempotentRequest:
        """Store the key's first use, or answer the one stored before (whatever its body: the
        caller compares `request_hash`, `commands.place_order`).

        Two first uses racing in transactions conflict and the loser's retry finds the winner's
        row.
        """
        found = await self.previous_request(user_id, key, session)
        if found is None:
            row = {
                "_id": idempotency_id(user_id, key),
                "user_id": user_id,
                "key": key,
                "request_hash": body_hash,
                "order_id": order_id,
                "response": response,
                "created_at": now,
            }
            try:
                await self.db[IDEMPOTENCY].insert_one(row, session=session)
                return IdempotentRequest(order_id, body_hash, response)
            except DuplicateKeyError:
                if session is not None:
                    raise  # the transaction is aborted; the retry reads the winner's row
                found = await self.previous_request(user_id, key, session)
                assert found is not None
        return found

    async def previous_request(
        self, user_id: str, key: str, session: Session = None
    ) -> IdempotentRequest | None:
        """The first use of `key` by `user_id` within the last 24 h, or None."""
        doc = await self.db[IDEMPOTENCY].find_one(
            {"_id": idempotency_id(user_id, key)}, session=session
        )
        if doc is None:
            return None
        return IdempotentRequest(doc["order_id"], doc["request_hash"], doc["response"])
