"""Mongo storage of the shipping service: `shipments`, one document per CONFIRMED order.

A shipment (snake_case): `_id` (the shipment id, derived from the order id:
`domain.shipment_id_for`), `order_id` (unique too), `user_id`, `status` (`domain.ShipmentStatus`),
`lines` [{product_id, quantity}], `address` (the order's address as the event carried it, or
None), `carrier`, `tracking_number`, `created_at`, `shipped_at`, `delivered_at`, `shipped_by`,
`delivered_by` (the actor's user id; None for the system), `updated_at`.

A shipment moves only by a conditional update on the status it was read in (`advance`), so a
repeated or concurrent ship or deliver moves it, and emits, once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError

from bus import AlreadyHandled
from kit.mongo import Db, Doc, IndexSpec, Session
from shipping_service.domain import Move, ShipmentStatus

SHIPMENTS = "shipments"

# Created at start-up by the service lifespan (idempotent).
INDEXES: list[IndexSpec] = [
    IndexSpec(SHIPMENTS, "order_id", unique=True, name="order_unique"),
    # The warehouse queue (per status, oldest first) and the auto-advance sweeper's scans.
    IndexSpec(
        SHIPMENTS,
        [("status", ASCENDING), ("created_at", ASCENDING), ("_id", ASCENDING)],
        name="status_created",
    ),
    IndexSpec(SHIPMENTS, [("created_at", ASCENDING), ("_id", ASCENDING)], name="created"),
]


def shipment_doc(
    shipment_id: str,
    *,
    order_id: str,
    user_id: str,
    lines: Sequence[tuple[str, int]],
    address: Doc | None,
    now: datetime,
) -> Doc:
    """A new shipment, waiting in the warehouse queue."""
    return {
        "_id": shipment_id,
        "order_id": order_id,
        "user_id": user_id,
        "status": "PENDING",
        "lines": [{"product_id": p, "quantity": q} for p, q in lines],
        "address": address,
        "carrier": None,
        "tracking_number": None,
        "created_at": now,
        "shipped_at": None,
        "delivered_at": None,
        "updated_at": now,
    }


class ShippingStore:
    """Queries and writes of the shipping database; a `session` joins the caller's transaction."""

    def __init__(self, db: Db) -> None:
        self.db = db
        self.shipments = db[SHIPMENTS]

    async def get(self, shipment_id: str, session: Session = None) -> Doc | None:
        """A shipment by id, or None."""
        return await self.shipments.find_one({"_id": shipment_id}, session=session)

    async def insert(self, doc: Doc, session: Session = None) -> None:
        """Store a new shipment (its `_id` and `order_id` are unique: one per order).

        The shipment is the handler's record of the order's OrderConfirmed (no inbox row): a
        copy of it that got here first makes this insert hit the unique key, and
        `AlreadyHandled` aborts the transaction and skips the delivery."""
        try:
            await self.shipments.insert_one(doc, session=session)
        except DuplicateKeyError as exc:
            raise AlreadyHandled(f"shipment of order {doc['order_id']}") from exc

    async def advance(
        self, shipment_id: str, step: Move, fields: Doc, session: Session = None
    ) -> Doc | None:
        """Make `step` on the shipment while it is still in `step.source`, setting `fields`;
        the shipment after it, or None when it was not (any more) in that state."""
        return await self.shipments.find_one_and_update(
            {"_id": shipment_id, "status": step.source},
            {"$set": {"status": step.target, **fields}},
            return_document=ReturnDocument.AFTER,
            session=session,
        )

    async def page(
        self,
        *,
        status: ShipmentStatus | None,
        order_id: str | None,
        after: tuple[datetime, str] | None,
        limit: int,
    ) -> list[Doc]:
        """Shipments oldest first (the warehouse works the queue in order), optionally in one
        status and/or of one order, after the `(created_at, id)` position, at most `limit`."""
        query: dict[str, Any] = {}
        if status is not None:
            query["status"] = status
        if order_id is not None:
            query["order_id"] = order_id
        if after is not None:
            created_at, last_id = after
            query["$or"] = [
                {"created_at": {"$gt": created_at}},
                {"created_at": created_at, "_id": {"$gt": last_id}},
            ]
        found = (
            self.shipments.find(query)
            .sort([("created_at", ASCENDING), ("_id", ASCENDING)])
            .limit(limit)
        )
        return [doc async for doc in found]

    async def due(
        self,
        status: ShipmentStatus,
        stamp: str,
        before: datetime,
        limit: int,
        *,
        exclude: Sequence[str] = (),
    ) -> list[str]:
        """Ids of shipments in `status` whose `stamp` time is at or before `before`, oldest
        first (but the `exclude`d ones: the sweeper's quarantined rows)."""
        query: Doc = {"status": status, stamp: {"$lte": before}}
        if exclude:
            query["_id"] = {"$nin": list(exclude)}
        found = self.shipments.find(query, {"_id": 1}).sort(stamp, ASCENDING).limit(limit)
        return [doc["_id"] async for doc in found]
