"""Mongo storage of the user service: the collections it owns and their indexes."""

from __future__ import annotations

from kit.mongo import IndexSpec

# Created at start-up by the service lifespan (idempotent); later issues add their collections.
INDEXES: list[IndexSpec] = [
    IndexSpec("users", "email", unique=True, name="email_unique"),
    IndexSpec("users", "username", unique=True, name="username_unique"),
    IndexSpec("refresh_tokens", "family_id", name="family"),
    IndexSpec("refresh_tokens", "expires_at", ttl_seconds=0, name="expiry_ttl"),
]
