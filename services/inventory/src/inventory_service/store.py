"""Mongo storage of the inventory service: products, reservations, the stock ledger, leases.

Stock counters change only through conditional atomic updates (`available >= n` in the filter,
`$inc` of two counters at once), so concurrent writers can never oversell or lose a unit.
Documents use snake_case; the API maps them to camelCase.

The ledger: one row per counter change of a product (`domain.Ledger`). An order's moves are kept
in its reservation (`moves`), written by the same command as the reservation's status, so that a
reservation step costs its product updates and one reservation write; the catalogue's moves
(opening stock, adjustments) are rows of `stock_ledger`. `ledger` reads both.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from inventory_service.domain import Candidate, Ledger, LineRequest, ReservationStatus
from kit.mongo import IndexSpec

type Db = AsyncDatabase[Any]
type Session = AsyncClientSession | None
type Doc = dict[str, Any]

PRODUCTS = "products"
RESERVATIONS = "reservations"
LEDGER = "stock_ledger"
AUDIT_LOG_CAP = 20
CANDIDATE_SCAN = 200

# Created at start-up by the service lifespan (idempotent).
INDEXES: list[IndexSpec] = [
    IndexSpec(PRODUCTS, [("category", ASCENDING), ("name", ASCENDING)], name="category_name"),
    IndexSpec(PRODUCTS, [("name", ASCENDING), ("_id", ASCENDING)], name="name_id"),
    IndexSpec(RESERVATIONS, "order_id", unique=True, name="order_unique"),
    # The sweeper's `status: held` (few rows): single-field, see kit.mongo.
    IndexSpec(RESERVATIONS, "status", name="status"),
    IndexSpec(LEDGER, [("product_id", ASCENDING), ("at", ASCENDING)], name="product_at"),
]

LIVE: Doc = {"deleted": False}


# --- products ---------------------------------------------------------------------------------


async def insert_products(db: Db, docs: Sequence[Doc], session: Session) -> None:
    """Insert new product documents."""
    if docs:
        await db[PRODUCTS].insert_many(list(docs), session=session)


async def get_product(db: Db, product_id: str, session: Session = None) -> Doc | None:
    """A live (not deleted) product, or None."""
    return await db[PRODUCTS].find_one({"_id": product_id, **LIVE}, session=session)


async def existing_ids(db: Db, ids: Sequence[str], session: Session) -> set[str]:
    """Which of `ids` are stored already (deleted ones included)."""
    found = db[PRODUCTS].find({"_id": {"$in": list(ids)}}, {"_id": 1}, session=session)
    return {doc["_id"] async for doc in found}


async def list_products(
    db: Db,
    *,
    q: str | None,
    category: str | None,
    after: tuple[str, str] | None,
    limit: int,
) -> list[Doc]:
    """Live products by name then id, after the `(name, id)` position, at most `limit`."""
    clauses: list[Doc] = [LIVE]
    if q:
        # mongoeco has no $text without a text index; an escaped, case-insensitive regex is a
        # plain substring match and can never become an operator.
        pattern = {"$regex": re.escape(q), "$options": "i"}
        clauses.append({"$or": [{"name": pattern}, {"description": pattern}]})
    if category:
        clauses.append({"category": category})
    if after is not None:
        name, last_id = after
        clauses.append({"$or": [{"name": {"$gt": name}}, {"name": name, "_id": {"$gt": last_id}}]})
    cursor = (
        db[PRODUCTS]
        .find({"$and": clauses})
        .sort([("name", ASCENDING), ("_id", ASCENDING)])
        .limit(limit)
    )
    return [doc async for doc in cursor]


async def find_products(db: Db, ids: Sequence[str], session: Session = None) -> dict[str, Doc]:
    """Live products among `ids`, by id."""
    found = db[PRODUCTS].find({"_id": {"$in": list(ids)}, **LIVE}, session=session)
    return {doc["_id"]: doc async for doc in found}


async def alternative_candidates(
    db: Db, category: str, exclude: Sequence[str], session: Session = None
) -> list[Candidate]:
    """In-stock live products of a category (bounded scan), as ranking candidates."""
    found = (
        db[PRODUCTS]
        .find(
            {"category": category, "available": {"$gt": 0}, "_id": {"$nin": list(exclude)}, **LIVE},
            {"price_cents": 1, "available": 1},
            session=session,
        )
        .limit(CANDIDATE_SCAN)
    )
    return [Candidate(d["_id"], d["price_cents"], d["available"]) async for d in found]


def audit_push(entry: Doc) -> Doc:
    """The `$push` that appends to a product's audit log and keeps only the last entries."""
    return {"audit_logs": {"$each": [entry], "$slice": -AUDIT_LOG_CAP}}


async def update_product(
    db: Db, product_id: str, changes: Doc, audit: Doc, session: Session
) -> Doc | None:
    """Set fields of a live product and log the change; the new document, or None."""
    return await db[PRODUCTS].find_one_and_update(
        {"_id": product_id, **LIVE},
        {"$set": changes, "$push": audit_push(audit)},
        return_document=ReturnDocument.AFTER,
        session=session,
    )


async def adjust_stock(
    db: Db, product_id: str, delta: int, set_fields: Doc, audit: Doc, session: Session
) -> Doc | None:
    """Receive or write off `delta` units (never below zero available); None when refused."""
    condition: Doc = {"available": {"$gte": -delta}} if delta < 0 else {}
    return await db[PRODUCTS].find_one_and_update(
        {"_id": product_id, **LIVE, **condition},
        {
            "$inc": {"received": delta, "available": delta},
            "$set": set_fields,
            "$push": audit_push(audit),
        },
        return_document=ReturnDocument.AFTER,
        session=session,
    )


async def set_low_stock_flag(db: Db, product_id: str, flag: bool, session: Session) -> bool:
    """Flip `low_stock` to `flag`; True only for the writer that flipped it (once per crossing)."""
    result = await db[PRODUCTS].update_one(
        {"_id": product_id, "low_stock": not flag},
        {"$set": {"low_stock": flag}},
        session=session,
    )
    return result.modified_count == 1


# --- stock moves ------------------------------------------------------------------------------


async def take_available(
    db: Db, product_id: str, quantity: int, session: Session, *, into: str = "reserved"
) -> Doc | None:
    """Move `quantity` from available to `into` if that many are available; the new document."""
    return await db[PRODUCTS].find_one_and_update(
        {"_id": product_id, **LIVE, "available": {"$gte": quantity}},
        {"$inc": {"available": -quantity, into: quantity}},
        return_document=ReturnDocument.AFTER,
        session=session,
    )


async def move_reserved(
    db: Db, product_id: str, quantity: int, to: str, session: Session, *, source: str = "reserved"
) -> Doc | None:
    """Move `quantity` from `source` (reserved, or committed for a cancelled sale) to `to`
    (available or committed); deleted products too. None when `source` holds less."""
    return await db[PRODUCTS].find_one_and_update(
        {"_id": product_id, source: {"$gte": quantity}},
        {"$inc": {source: -quantity, to: quantity}},
        return_document=ReturnDocument.AFTER,
        session=session,
    )


async def sell_reserved(db: Db, product_id: str, quantity: int, session: Session) -> bool:
    """Move `quantity` from reserved to committed (a paid hold); False when fewer are reserved.
    A plain update: the sale changes no available count, so nothing else is read from it."""
    result = await db[PRODUCTS].update_one(
        {"_id": product_id, "reserved": {"$gte": quantity}},
        {"$inc": {"reserved": -quantity, "committed": quantity}},
        session=session,
    )
    return result.modified_count == 1


async def put_back(db: Db, product_id: str, quantity: int, into: str, session: Session) -> None:
    """Undo a `take_available` into `into` inside the same transaction."""
    await db[PRODUCTS].update_one(
        {"_id": product_id}, {"$inc": {"available": quantity, into: -quantity}}, session=session
    )


async def record_ledger(db: Db, ledger: Ledger, session: Session) -> None:
    """Write a catalogue operation's ledger rows in one batch (an order's go in its
    reservation)."""
    if ledger.rows:
        await db[LEDGER].insert_many([dict(r) for r in ledger.rows], session=session)


async def ledger(db: Db, product_id: str, session: Session = None) -> list[Doc]:
    """Every counter change of a product, oldest first: the catalogue's `stock_ledger` rows and
    the moves of the reservations that hold or held it (an audit read: it scans reservations)."""
    rows: list[Doc] = (
        await db[LEDGER].find({"product_id": product_id}, {"_id": 0}, session=session).to_list()
    )
    async for reservation in db[RESERVATIONS].find(
        {"moves.product_id": product_id}, {"moves": 1}, session=session
    ):
        rows += [m for m in reservation["moves"] if m["product_id"] == product_id]
    return sorted(rows, key=lambda row: row["at"])


# --- reservations -----------------------------------------------------------------------------


def lines_doc(lines: Sequence[LineRequest]) -> list[Doc]:
    return [{"product_id": line.product_id, "quantity": line.quantity} for line in lines]


def doc_lines(doc: Doc) -> list[LineRequest]:
    return [LineRequest(line["product_id"], line["quantity"]) for line in doc.get("lines", [])]


async def get_reservation(db: Db, order_id: str, session: Session = None) -> Doc | None:
    """The reservation record of an order, whatever its status."""
    return await db[RESERVATIONS].find_one({"_id": order_id}, session=session)


async def insert_reservation(db: Db, doc: Doc, session: Session) -> None:
    """Store an order's reservation record (one per order: `_id` and `order_id` are unique)."""
    await db[RESERVATIONS].insert_one(doc, session=session)


async def move_reservation(
    db: Db,
    reservation: Doc,
    to: ReservationStatus,
    ledger: Ledger,
    now: datetime,
    session: Session,
    **fields: Any,
) -> bool:
    """Move a reservation, as it was read, to `to` with the ledger rows of the move (appended to
    its `moves`) in one write; False when its status changed since it was read."""
    result = await db[RESERVATIONS].update_one(
        {"_id": reservation["_id"], "status": reservation["status"]},
        {
            "$set": {"status": to, "updated_at": now, **fields},
            "$push": {"moves": {"$each": [dict(r) for r in ledger.rows]}},
        },
        session=session,
    )
    return result.matched_count == 1


async def extend_reservation(
    db: Db, order_id: str, until: datetime, now: datetime, session: Session
) -> bool:
    """Hold a reservation at least until `until`; False when it is not held (or held longer)."""
    result = await db[RESERVATIONS].update_one(
        {"_id": order_id, "status": "reserved", "expires_at": {"$lt": until}},
        {"$set": {"expires_at": until, "updated_at": now}},
        session=session,
    )
    return result.modified_count == 1


async def expired_reservations(
    db: Db, now: datetime, limit: int, *, exclude: Sequence[str] = ()
) -> list[str]:
    """Ids of held reservations past their expiry, oldest first (but the `exclude`d ones: the
    sweeper's quarantined rows)."""
    query: Doc = {"status": "reserved", "expires_at": {"$lte": now}}
    if exclude:
        query["_id"] = {"$nin": list(exclude)}
    found = db[RESERVATIONS].find(query, {"_id": 1}).sort("expires_at", ASCENDING).limit(limit)
    return [doc["_id"] async for doc in found]
