"""Mongo storage of the analytics service: the collections it owns and their indexes."""

from __future__ import annotations

from pymongo import ASCENDING, DESCENDING, IndexModel
from service_runtime import Indexes

# Created at start-up by the lifespan (idempotent). Collections of later issues add theirs here.
INDEXES: Indexes = {
    "events": [
        IndexModel([("type", ASCENDING), ("occurred_at", ASCENDING)], name="type_time"),
        IndexModel([("correlation_id", ASCENDING)], name="correlation"),
    ],
    "audit": [
        IndexModel([("actor.user_id", ASCENDING), ("at", DESCENDING)], name="actor_time"),
        IndexModel([("entity_id", ASCENDING), ("at", DESCENDING)], name="entity_time"),
    ],
}
