"""Mongo storage of the order service: the collections it owns and their indexes."""

from __future__ import annotations

from pymongo import ASCENDING, DESCENDING, IndexModel
from service_runtime import Indexes

# Created at start-up by the lifespan (idempotent). Collections of later issues add theirs here.
INDEXES: Indexes = {
    "orders": [
        IndexModel([("user_id", ASCENDING), ("created_at", DESCENDING)], name="user_recent"),
        IndexModel([("status", ASCENDING), ("deadline", ASCENDING)], name="status_deadline"),
    ],
    "idempotency_keys": [
        IndexModel([("user_id", ASCENDING), ("key", ASCENDING)], name="user_key", unique=True),
        IndexModel([("created_at", ASCENDING)], name="expiry_ttl", expireAfterSeconds=86400),
    ],
}
