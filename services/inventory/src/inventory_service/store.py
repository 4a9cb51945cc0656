"""Mongo storage of the inventory service: the collections it owns and their indexes."""

from __future__ import annotations

from pymongo import ASCENDING, IndexModel
from service_runtime import Indexes

# Created at start-up by the lifespan (idempotent). Collections of later issues add theirs here.
INDEXES: Indexes = {
    "products": [IndexModel([("category", ASCENDING), ("name", ASCENDING)], name="category_name")],
    "reservations": [
        IndexModel([("order_id", ASCENDING)], name="order_unique", unique=True),
        IndexModel([("expires_at", ASCENDING)], name="expiry"),
    ],
    "stock_ledger": [IndexModel([("product_id", ASCENDING), ("at", ASCENDING)], name="product_at")],
}
