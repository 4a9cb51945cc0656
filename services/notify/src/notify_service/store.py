"""Mongo storage of the notify service: the collections it owns and their indexes."""

from __future__ import annotations

from pymongo import ASCENDING, DESCENDING, IndexModel
from service_runtime import Indexes

# Created at start-up by the lifespan (idempotent). Collections of later issues add theirs here.
INDEXES: Indexes = {
    "notifications": [
        IndexModel([("user_id", ASCENDING), ("created_at", DESCENDING)], name="user_recent"),
        IndexModel([("dedupe_key", ASCENDING)], name="dedupe_unique", unique=True),
    ],
}
