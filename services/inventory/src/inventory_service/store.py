"""Mongo storage of the inventory service: the collections it owns and their indexes."""

from __future__ import annotations

from pymongo import ASCENDING

from kit.mongo import IndexSpec

# Created at start-up by the service lifespan (idempotent); later issues add their collections.
INDEXES: list[IndexSpec] = [
    IndexSpec("products", [("category", ASCENDING), ("name", ASCENDING)], name="category_name"),
    IndexSpec("reservations", "order_id", unique=True, name="order_unique"),
    IndexSpec("reservations", "expires_at", name="expiry"),
    IndexSpec("stock_ledger", [("product_id", ASCENDING), ("at", ASCENDING)], name="product_at"),
]
