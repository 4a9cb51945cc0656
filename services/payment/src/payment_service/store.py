"""Mongo storage of the payment service: the collections it owns and their indexes."""

from __future__ import annotations

from pymongo import ASCENDING

from kit.mongo import IndexSpec

# Created at start-up by the service lifespan (idempotent); later issues add their collections.
INDEXES: list[IndexSpec] = [
    IndexSpec("payments", "order_id", unique=True, name="order_unique"),
    IndexSpec(
        "attempts", [("payment_id", ASCENDING), ("number", ASCENDING)], unique=True, name="number"
    ),
]
