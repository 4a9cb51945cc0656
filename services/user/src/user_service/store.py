"""Mongo storage of the user service: users, refresh tokens and the attempt counters.

A user document (snake_case fields): `_id` (UUIDv7), `username`, `username_key` (lower-case,
unique), `email` (lower-case, unique), `password_hash`, `role`, `phone`, `addresses`,
`payment_methods` (provider `token` kept here only), `preferences`, the flags
(`is_profile_complete`, `profile_completion_prompted`, `last_active_at`,
`preferred_payment_method`, `order_count`), where it came from (`device_info`, `registered_ip`,
`last_ip`, `region`, `last_login`), `disabled`, `deleted_at`, `created_at`, `updated_at`, and
`token_version` (absent = 0; access tokens below it are revoked) with `token_version_at`, when it
last moved (kit.auth.revocation).

Counters (`attempts`) live in Mongo, not in process memory, so that every instance of the
service sees the same rate limits and lockouts; a TTL index forgets them.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timedelta

from pymongo import ReturnDocument
from pymongo.errors import BulkWriteError, DuplicateKeyError

from bus.documents import PROCESSED, processed_push
from kit.mongo import Db, Doc, IndexSpec, Session
from user_service import domain

DUPLICATE_KEY = 11000

# Created at start-up by the service lifespan (idempotent).
INDEXES: list[IndexSpec] = [
    IndexSpec("users", "email", unique=True, name="email_unique"),
    IndexSpec("users", "username_key", unique=True, name="username_key_unique"),
    IndexSpec("users", "token_version_at", sparse=True, name="token_version_at"),
    IndexSpec("refresh_tokens", "family_id", name="family"),
    IndexSpec("refresh_tokens", "user_id", name="user"),
    IndexSpec("refresh_tokens", "expires_at", ttl_seconds=0, name="expiry_ttl"),
    IndexSpec("attempts", "expires_at", ttl_seconds=0, name="attempts_ttl"),
]


class IdentityTaken(Exception):
    """The email or the username belongs to another account."""

    def __init__(self, field: str) -> None:
        super().__init__(field)
        self.field = field


def token_hash(token: str) -> str:
    """Refresh tokens are stored as SHA-256 (they are 256-bit random: no salt or KDF needed)."""
    return hashlib.sha256(token.encode()).hexdigest()


class UserStore:
    """The user service's collections."""

    def __init__(self, db: Db) -> None:
        self.users = db["users"]
        self.tokens = db["refresh_tokens"]
        self.attempts = db["attempts"]

    # ── users ──

    async def get(self, user_id: str, session: Session = None) -> Doc | None:
        """A user that is not deleted."""
        if not isinstance(user_id, str):
            return None
        doc: Doc | None = await self.users.find_one(
            {"_id": user_id, "deleted_at": None}, session=session
        )
        return doc

    async def by_identifier(self, identifier: str) -> Doc | None:
        """The live user with this email (any case) or username (any case)."""
        key = (
            {"email": domain.normalise_email(identifier)}
            if domain.is_email(identifier)
            else {"username_key": domain.username_key(identifier)}
        )
        doc: Doc | None = await self.users.find_one({**key, "deleted_at": None})
        return doc

    async def by_email(self, email: str) -> Doc | None:
        doc: Doc | None = await self.users.find_one({"email": domain.normalise_email(email)})
        return doc

    async def insert(self, user: Doc, session: Session) -> None:
        """Insert a new user; `IdentityTaken` names the field a unique index refused."""
        try:
            await self.users.insert_one(user, session=session)
        except DuplicateKeyError as exc:
            raise IdentityTaken(self._taken_field(exc)) from exc

    async def insert_many(self, users: list[Doc], session: Session) -> None:
        """Insert new users in one command (the bulk seed); `IdentityTaken` as `insert`."""
        try:
            await self.users.insert_many(users, session=session)
        except DuplicateKeyError as exc:
            raise IdentityTaken(self._taken_field(exc)) from exc
        except BulkWriteError as exc:
            first = ((exc.details or {}).get("writeErrors") or [{}])[0]
            if first.get("code") != DUPLICATE_KEY:
                raise
            raise IdentityTaken("username" if "username" in str(first) else "email") from exc

    async def update(
        self, user_id: str, changes: Doc, session: Session, *, inc: Doc | None = None
    ) -> Doc | None:
        """Apply `changes` to a live user and answer the result (None when there is none)."""
        update: Doc = {"$set": changes}
        if inc:
            update["$inc"] = inc
        try:
            doc: Doc | None = await self.users.find_one_and_update(
                {"_id": user_id, "deleted_at": None},
                update,
                session=session,
                return_document=ReturnDocument.AFTER,
            )
        except DuplicateKeyError as exc:
            raise IdentityTaken(self._taken_field(exc)) from exc
        return doc

    @staticmethod
    def _taken_field(exc: DuplicateKeyError) -> str:
        details = exc.details or {}
        pattern = details.get("keyPattern") or {}
        text = f"{pattern} {details.get('errmsg', '')} {exc}"
        return "username" if "username" in text else "email"

    async def count_order(
        self, user_id: str, *, payment_method_id: str, at: datetime, processed: str
    ) -> bool:
        """One more confirmed order for the user (its count, preferred payment method and last
        activity), on a user document that has not noted `processed` yet, noting it in the same
        update (a single-document step, `bus.documents`); False when nothing matched."""
        result = await self.users.update_one(
            {"_id": user_id, PROCESSED: {"$ne": processed}},
            {
                "$inc": {"order_count": 1},
                "$set": {"preferred_payment_method": payment_method_id},
                "$max": {"last_active_at": at},
                "$push": processed_push(processed),
            },
        )
        return result.matched_count > 0

    async def touch(self, user_id: str, at: datetime) -> None:
        """Record activity outside any transaction (check, login bookkeeping)."""
        await self.users.update_one({"_id": user_id}, {"$max": {"last_active_at": at}})

    async def token_versions(self, since: datetime) -> list[tuple[str, int]]:
        """`(user id, token version)` of every user, deleted ones included, whose version moved
        at or after `since`."""
        cursor = self.users.find(
            {"token_version_at": {"$gte": since}}, projection={"token_version": 1}
        )
        return [(doc["_id"], int(doc.get("token_version", 0))) async for doc in cursor]

    async def page(
        self, *, role: str | None, q: str | None, after: str | None, limit: int
    ) -> list[Doc]:
        """Live users in id (= creation) order, after `after`, filtered by role and text."""
        query: Doc = {"deleted_at": None}
        if role:
            query["role"] = role
        if q:
            pattern = re.escape(q.strip().lower())
            query["$or"] = [{"email": {"$regex": pattern}}, {"username_key": {"$regex": pattern}}]
        if after:
            query["_id"] = {"$gt": after}
        cursor = self.users.find(query).sort("_id", 1).limit(limit)
        return [doc async for doc in cursor]

    # ── refresh tokens ──

    async def add_refresh(
        self, token: str, *, user_id: str, family_id: str, expires_at: datetime, session: Session
    ) -> None:
        await self.tokens.insert_one(
            {
                "_id": token_hash(token),
                "user_id": user_id,
                "family_id": family_id,
                "expires_at": expires_at,
                "used_at": None,
                "revoked": False,
            },
            session=session,
        )

    async def refresh_record(self, token: str) -> Doc | None:
        doc: Doc | None = await self.tokens.find_one({"_id": token_hash(token)})
        return doc

    async def mark_used(self, token: str, at: datetime, session: Session) -> bool:
        """Claim a refresh token once; False when someone else already rotated it."""
        result = await self.tokens.update_one(
            {"_id": token_hash(token), "used_at": None, "revoked": False},
            {"$set": {"used_at": at}},
            session=session,
        )
        return result.modified_count == 1

    async def revoke_family(self, family_id: str) -> None:
        await self.tokens.update_many({"family_id": family_id}, {"$set": {"revoked": True}})

    async def revoke_user(self, user_id: str, session: Session) -> None:
        await self.tokens.update_many(
            {"user_id": user_id}, {"$set": {"revoked": True}}, session=session
        )

    # ── counters (rate limits, lockouts) ──

    async def hit(self, key: str, window: timedelta, now: datetime) -> int:
        """Count one request in the fixed window `key` falls in; answer the window's count."""
        bucket = int(now.timestamp() // window.total_seconds())
        doc = await self.attempts.find_one_and_update(
            {"_id": f"{key}:{bucket}"},
            {"$inc": {"count": 1}, "$setOnInsert": {"expires_at": now + 2 * window}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        return int(doc["count"]) if doc else 1

    async def claim_attempt(
        self,
        key: str,
        at: datetime,
        *,
        max_failures: int,
        window: timedelta,
        lockout: timedelta,
        expires_at: datetime,
    ) -> bool:
        """Count one login attempt under `key` as a failure BEFORE its password is checked,
        unless `key` is locked (`domain.lockout_remaining`); False when it is.

        One conditional update: of many concurrent attempts at most `max_failures` are claimed,
        so no more passwords than that are ever checked. A success clears the key
        (`clear_failures`). The array keeps the last `max_failures` times in order, so "locked"
        is: it is full, its oldest is within `window` and its newest within `lockout`.
        """
        unlocked: Doc = {
            "$or": [
                {f"failures.{max_failures - 1}": {"$exists": False}},
                {"failures.0": {"$lte": at - window}},
                {f"failures.{max_failures - 1}": {"$lte": at - lockout}},
            ]
        }
        claim: Doc = {
            "$push": {"failures": {"$each": [at], "$slice": -max_failures}},
            "$set": {"expires_at": expires_at},
        }
        try:
            await self.attempts.update_one({"_id": key, **unlocked}, claim, upsert=True)
        except DuplicateKeyError:
            # The key exists and is locked, or a concurrent first attempt created it: try once
            # more without the upsert, which cannot race any longer.
            result = await self.attempts.update_one({"_id": key, **unlocked}, claim)
            return result.modified_count == 1
        return True

    async def failures(self, key: str) -> list[datetime]:
        doc = await self.attempts.find_one({"_id": key})
        return list(doc.get("failures", [])) if doc else []

    async def add_failure(self, key: str, at: datetime, keep: int, expires_at: datetime) -> None:
        """Remember one failed login under `key` (the last `keep` are enough for the maths)."""
        await self.attempts.update_one(
            {"_id": key},
            {
                "$push": {"failures": {"$each": [at], "$slice": -keep}},
                "$set": {"expires_at": expires_at},
            },
            upsert=True,
        )

    async def clear_failures(self, key: str) -> None:
        await self.attempts.delete_one({"_id": key})
