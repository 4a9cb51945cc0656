"""Mongo storage of the analytics service: the collections it owns and their indexes."""

from __future__ import annotations

from pymongo import ASCENDING, DESCENDING

from kit.mongo import IndexSpec

# Created at start-up by the service lifespan (idempotent); later issues add their collections.
INDEXES: list[IndexSpec] = [
    IndexSpec("events", [("type", ASCENDING), ("occurred_at", ASCENDING)], name="type_time"),
    IndexSpec("events", "correlation_id", name="correlation"),
    IndexSpec("audit", [("actor.user_id", ASCENDING), ("at", DESCENDING)], name="actor_time"),
    IndexSpec("audit", [("entity_id", ASCENDING), ("at", DESCENDING)], name="entity_time"),
]
