"""Mongo storage of the notify service: the collections it owns and their indexes."""

from __future__ import annotations

from pymongo import ASCENDING, DESCENDING

from kit.mongo import IndexSpec

# Created at start-up by the service lifespan (idempotent); later issues add their collections.
INDEXES: list[IndexSpec] = [
    IndexSpec(
        "notifications", [("user_id", ASCENDING), ("created_at", DESCENDING)], name="user_recent"
    ),
    # One notification per (event, channel): a redelivered event never sends twice.
    IndexSpec("notifications", "dedupe_key", unique=True, name="dedupe_unique"),
]
