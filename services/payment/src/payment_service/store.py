"""Mongo storage of the payment service: the collections it owns and their indexes."""

from __future__ import annotations

from pymongo import ASCENDING, IndexModel
from service_runtime import Indexes

# Created at start-up by the lifespan (idempotent). Collections of later issues add theirs here.
INDEXES: Indexes = {
    "payments": [IndexModel([("order_id", ASCENDING)], name="order_unique", unique=True)],
    "attempts": [
        IndexModel(
            [("payment_id", ASCENDING), ("number", ASCENDING)], name="payment_number", unique=True
        ),
    ],
}
