"""Mongo storage of the inventory service: products, reservations, restocked returns, the stock
ledger.

Stock counters change only through conditional atomic updates (`available >= n` in the filter,
`$inc` of two counters at once), so concurrent writers can never oversell or lose a unit.
Documents use snake_case; the API maps them to camelCase.

The ledger: one row per counter change of a product (`domain.Ledger`). An order's moves are kept
in its reservation (`moves`), written by the same command as the reservation's status, so that a
reservation step costs its product updates and one reservation write; the catalogue's moves
(opening stock, adjustments) are rows of `stock_ledger`; a received return's moves are kept in
its `returns` record (`_id` = return id: inserted once, which is what makes a restock happen once).
`InventoryStore.ledger` reads all three.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError

from bus import AlreadyHandled
from inventory_service.domain import Candidate, Ledger, LineRequest, NewProduct, ReservationStatus
from kit.mongo import Db, Doc, IndexSpec, Session

PRODUCTS = "products"
RESERVATIONS = "reservations"
RETURNS = "returns"
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


# --- document shapes --------------------------------------------------------------------------


def audit_entry(
    action: str, actor_id: str | None, now: datetime, changes: Mapping[str, Any]
) -> Doc:
    """One entry of a product's audit log."""
    return {"at": now, "action": action, "actor_id": actor_id, "changes": dict(changes)}


def product_doc(product_id: str, new: NewProduct, actor_id: str | None, now: datetime) -> Doc:
    """A fresh product document: all its stock received and available."""
    return {
        "_id": product_id,
        "name": new.name,
        "description": new.description,
        "category": new.category,
        "price_cents": new.price_cents,
        "currency": new.currency,
        "low_stock_threshold": new.low_stock_threshold,
        "received": new.stock_count,
        "available": new.stock_count,
        "reserved": 0,
        "committed": 0,
        "returned": 0,
        "low_stock": False,
        "deleted": False,
        "created_at": now,
        "updated_at": now,
        "created_by": actor_id,
        "updated_by": actor_id,
        "audit_logs": [audit_entry("created", actor_id, now, {"stockCount": new.stock_count})],
    }


def audit_push(entry: Doc) -> Doc:
    """The `$push` that appends to a product's audit log and keeps only the last entries."""
    return {"audit_logs": {"$each": [entry], "$slice": -AUDIT_LOG_CAP}}


def lines_doc(lines: Sequence[LineRequest]) -> list[Doc]:
    return [{"product_id": line.product_id, "quantity": line.quantity} for line in lines]


def doc_lines(doc: Doc) -> list[LineRequest]:
    return [LineRequest(line["product_id"], line["quantity"]) for line in doc.get("lines", [])]


class InventoryStore:
    """Queries and writes of the inventory database; a `session` joins the caller's transaction."""

    def __init__(self, db: Db) -> None:
        self.db = db
        self.products = db[PRODUCTS]
        self.reservations = db[RESERVATIONS]
        self.stock_ledger = db[LEDGER]
        self.returns = db[RETURNS]

    # --- products -----------------------------------------------------------------------------

    async def insert_products(self, docs: Sequence[Doc], session: Session = None) -> None:
        """Insert new product documents."""
        if docs:
            await self.products.insert_many(list(docs), session=session)

    async def get_product(self, product_id: str, session: Session = None) -> Doc | None:
        """A live (not deleted) product, or None."""
        return await self.products.find_one({"_id": product_id, **LIVE}, session=session)

    async def existing_ids(self, ids: Sequence[str], session: Session = None) -> set[str]:
        """Which of `ids` are stored already (deleted ones included)."""
        found = self.products.find({"_id": {"$in": list(ids)}}, {"_id": 1}, session=session)
        return {doc["_id"] async for doc in found}

    async def list_products(
        self,
        *,
        q: str | None,
        category: str | None,
        after: tuple[str, str] | None,
        limit: int,
    ) -> list[Doc]:
        """Live products by name then id, after the `(name, id)` position, at most `limit`."""
        clauses: list[Doc] = [LIVE]
        if q:
            # mongoeco has no $text without a text index; an escaped, case-insensitive regex is
            # a plain substring match and can never become an operator.
            pattern = {"$regex": re.escape(q), "$options": "i"}
            clauses.append({"$or": [{"name": pattern}, {"description": pattern}]})
        if category:
            clauses.append({"category": category})
        if after is not None:
            name, last_id = after
            clauses.append(
                {"$or": [{"name": {"$gt": name}}, {"name": name, "_id": {"$gt": last_id}}]}
            )
        cursor = (
            self.products.find({"$and": clauses})
            .sort([("name", ASCENDING), ("_id", ASCENDING)])
            .limit(limit)
        )
        return [doc async for doc in cursor]

    async def find_products(self, ids: Sequence[str], session: Session = None) -> dict[str, Doc]:
        """Live products among `ids`, by id."""
        found = self.products.find({"_id": {"$in": list(ids)}, **LIVE}, session=session)
        return {doc["_id"]: doc async for doc in found}

    async def alternative_candidates(
        self, category: str, exclude: Sequence[str], session: Session = None
    ) -> list[Candidate]:
        """In-stock live products of a category (bounded scan), as ranking candidates."""
        query = {"category": category, "available": {"$gt": 0}, "_id": {"$nin": list(exclude)}}
        found = self.products.find(
            {**query, **LIVE}, {"price_cents": 1, "available": 1}, session=session
        ).limit(CANDIDATE_SCAN)
        return [Candidate(d["_id"], d["price_cents"], d["available"]) async for d in found]

    async def update_product(
        self, product_id: str, changes: Doc, audit: Doc, session: Session = None
    ) -> Doc | None:
        """Set fields of a live product and log the change; the new document, or None."""
        return await self.products.find_one_and_update(
            {"_id": product_id, **LIVE},
            {"$set": changes, "$push": audit_push(audit)},
            return_document=ReturnDocument.AFTER,
            session=session,
        )

    async def adjust_stock(
        self, product_id: str, delta: int, set_fields: Doc, audit: Doc, session: Session = None
    ) -> Doc | None:
        """Receive or write off `delta` units (never below zero available); None when refused."""
        condition: Doc = {"available": {"$gte": -delta}} if delta < 0 else {}
        return await self.products.find_one_and_update(
            {"_id": product_id, **LIVE, **condition},
            {
                "$inc": {"received": delta, "available": delta},
                "$set": set_fields,
                "$push": audit_push(audit),
            },
            return_document=ReturnDocument.AFTER,
            session=session,
        )

    async def set_low_stock_flag(
        self, product_id: str, flag: bool, session: Session = None
    ) -> bool:
        """Flip `low_stock` to `flag`; True only for the writer that flipped it (once per
        crossing)."""
        result = await self.products.update_one(
            {"_id": product_id, "low_stock": not flag},
            {"$set": {"low_stock": flag}},
            session=session,
        )
        return result.modified_count == 1

    # --- stock moves --------------------------------------------------------------------------

    async def take_available(
        self, product_id: str, quantity: int, session: Session = None, *, into: str = "reserved"
    ) -> Doc | None:
        """Move `quantity` from available to `into` if that many are available; the new
        document."""
        return await self.products.find_one_and_update(
            {"_id": product_id, **LIVE, "available": {"$gte": quantity}},
            {"$inc": {"available": -quantity, into: quantity}},
            return_document=ReturnDocument.AFTER,
            session=session,
        )

    async def move_reserved(
        self,
        product_id: str,
        quantity: int,
        to: str,
        session: Session = None,
        *,
        source: str = "reserved",
    ) -> Doc | None:
        """Move `quantity` from `source` (reserved, or committed for a cancelled sale) to `to`
        (available or committed); deleted products too. None when `source` holds less."""
        return await self.products.find_one_and_update(
            {"_id": product_id, source: {"$gte": quantity}},
            {"$inc": {source: -quantity, to: quantity}},
            return_document=ReturnDocument.AFTER,
            session=session,
        )

    async def sell_reserved(self, product_id: str, quantity: int, session: Session = None) -> bool:
        """Move `quantity` from reserved to committed (a paid hold); False when fewer are
        reserved. A plain update: the sale changes no available count, so nothing else is read
        from it."""
        result = await self.products.update_one(
            {"_id": product_id, "reserved": {"$gte": quantity}},
            {"$inc": {"reserved": -quantity, "committed": quantity}},
            session=session,
        )
        return result.modified_count == 1

    async def put_back(
        self, product_id: str, quantity: int, into: str, session: Session = None
    ) -> None:
        """Undo a `take_available` into `into` inside the same transaction."""
        await self.products.update_one(
            {"_id": product_id}, {"$inc": {"available": quantity, into: -quantity}}, session=session
        )

    async def take_back(
        self, product_id: str, quantity: int, session: Session = None
    ) -> Doc | None:
        """A received return: move `quantity` from committed back to available and count it in
        `returned` (deleted products too: their units are counted, not on sale); the new
        document, or None when fewer are committed."""
        return await self.products.find_one_and_update(
            {"_id": product_id, "committed": {"$gte": quantity}},
            {"$inc": {"committed": -quantity, "available": quantity, "returned": quantity}},
            return_document=ReturnDocument.AFTER,
            session=session,
        )

    async def record_ledger(self, ledger: Ledger, session: Session = None) -> None:
        """Write a catalogue operation's ledger rows in one batch (an order's go in its
        reservation)."""
        if ledger.rows:
            await self.stock_ledger.insert_many([dict(r) for r in ledger.rows], session=session)

    async def ledger(self, product_id: str, session: Session = None) -> list[Doc]:
        """Every counter change of a product, oldest first: the catalogue's `stock_ledger` rows
        and the moves of the reservations that hold or held it (an audit read: it scans
        reservations)."""
        rows: list[Doc] = await self.stock_ledger.find(
            {"product_id": product_id}, {"_id": 0}, session=session
        ).to_list()
        for records in (self.reservations, self.returns):
            async for record in records.find(
                {"moves.product_id": product_id}, {"moves": 1}, session=session
            ):
                rows += [m for m in record["moves"] if m["product_id"] == product_id]
        return sorted(rows, key=lambda row: row["at"])

    # --- returns ------------------------------------------------------------------------------

    async def insert_return(self, doc: Doc, session: Session) -> None:
        """Record a restocked return (`_id` = return id) with its ledger rows: the handler's record
        of it. A second one for the same return raises `AlreadyHandled` (the consumer aborts the
        transaction and skips the delivery: nothing is restocked twice)."""
        try:
            await self.returns.insert_one(doc, session=session)
        except DuplicateKeyError as exc:
            raise AlreadyHandled(f"return {doc['_id']} restocked already") from exc

    async def get_return(self, return_id: str, session: Session = None) -> Doc | None:
        """A restocked return's record, or None."""
        return await self.returns.find_one({"_id": return_id}, session=session)

    # --- reservations -------------------------------------------------------------------------

    async def get_reservation(self, order_id: str, session: Session = None) -> Doc | None:
        """The reservation record of an order, whatever its status."""
        return await self.reservations.find_one({"_id": order_id}, session=session)

    async def insert_reservation(self, doc: Doc, session: Session = None) -> None:
        """Store an order's reservation record (one per order: `_id` and `order_id` are
        unique)."""
        await self.reservations.insert_one(doc, session=session)

    async def move_reservation(
        self,
        reservation: Doc,
        to: ReservationStatus,
        ledger: Ledger,
        now: datetime,
        session: Session = None,
        **fields: Any,
    ) -> bool:
        """Move a reservation, as it was read, to `to` with the ledger rows of the move
        (appended to its `moves`) in one write; False when its status changed since it was
        read."""
        result = await self.reservations.update_one(
            {"_id": reservation["_id"], "status": reservation["status"]},
            {
                "$set": {"status": to, "updated_at": now, **fields},
                "$push": {"moves": {"$each": [dict(r) for r in ledger.rows]}},
            },
            session=session,
        )
        return result.matched_count == 1

    async def note_order_ended(
        self, order_id: str, reason: str, now: datetime, session: Session = None
    ) -> None:
        """Record that the order of a hold that expired has ended (cancelled, rejected)."""
        await self.reservations.update_one(
            {"_id": order_id, "status": "released", "release_reason": "expired"},
            {"$set": {"release_reason": reason, "updated_at": now}},
            session=session,
        )

    async def extend_reservation(
        self, order_id: str, until: datetime, now: datetime, session: Session = None
    ) -> bool:
        """Hold a reservation at least until `until`; False when it is not held (or held
        longer)."""
        result = await self.reservations.update_one(
            {"_id": order_id, "status": "reserved", "expires_at": {"$lt": until}},
            {"$set": {"expires_at": until, "updated_at": now}},
            session=session,
        )
        return result.modified_count == 1

    async def expired_reservations(
        self, now: datetime, limit: int, *, exclude: Sequence[str] = ()
    ) -> list[str]:
        """Ids of held reservations past their expiry, oldest first (but the `exclude`d ones:
        the sweeper's quarantined rows)."""
        query: Doc = {"status": "reserved", "expires_at": {"$lte": now}}
        if exclude:
            query["_id"] = {"$nin": list(exclude)}
        found = self.reservations.find(query, {"_id": 1}).sort("expires_at", ASCENDING).limit(limit)
        return [doc["_id"] async for doc in found]
