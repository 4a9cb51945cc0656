"""Mongo storage of the order service: the collections it owns and their indexes."""

from __future__ import annotations

from pymongo import ASCENDING, DESCENDING

from kit.mongo import IndexSpec

# Created at start-up by the service lifespan (idempotent); later issues add their collections.
INDEXES: list[IndexSpec] = [
    IndexSpec("orders", [("user_id", ASCENDING), ("created_at", DESCENDING)], name="user_recent"),
    IndexSpec("orders", [("status", ASCENDING), ("deadline", ASCENDING)], name="status_deadline"),
    IndexSpec(
        "idempotency_keys",
        [("user_id", ASCENDING), ("key", ASCENDING)],
        unique=True,
        name="user_key",
    ),
    # api.md: an Idempotency-Key is kept 24 h per user.
    IndexSpec("idempotency_keys", "created_at", ttl_seconds=24 * 3600, name="expiry_ttl"),
]
