"""Mongo storage of the user service: the collections it owns and their indexes."""

from __future__ import annotations

from pymongo import ASCENDING, IndexModel
from service_runtime import Indexes

# Created at start-up by the lifespan (idempotent). Collections of later issues add theirs here.
INDEXES: Indexes = {
    "users": [
        IndexModel([("email", ASCENDING)], name="email_unique", unique=True),
        IndexModel([("username", ASCENDING)], name="username_unique", unique=True),
    ],
    "refresh_tokens": [
        IndexModel([("family_id", ASCENDING)], name="family"),
        IndexModel([("expires_at", ASCENDING)], name="expiry_ttl", expireAfterSeconds=0),
    ],
}
