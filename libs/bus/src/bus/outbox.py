"""The transactional outbox: events are written with the state change, published after commit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from pymongo import ASCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from bus.tracing import inject_headers
from contracts import Envelope

COLLECTION = "outbox"
PENDING = "pending"
SENT = "sent"
# Sent rows are kept a week for inspection and replay; pending rows are never expired.
SENT_RETENTION = timedelta(days=7)


class OutboxWriter(Protocol):
    """Where a handler's emitted events go: the Mongo outbox, or the in-memory fake."""

    async def add(self, session: AsyncClientSession | None, *envelopes: Envelope[Any]) -> None: ...


def outbox_row(envelope: Envelope[Any], now: datetime | None = None) -> dict[str, Any]:
    """The document stored for one envelope; `traceparent` is taken from the current context."""
    return {
        "_id": envelope.id,
        "routing_key": envelope.routing_key,
        "type": envelope.type,
        "correlation_id": envelope.correlation_id,
        "body": envelope.to_json().decode(),
        "headers": inject_headers(),
        "status": PENDING,
        "created_at": now or datetime.now(UTC),
        "lease_until": None,
        "lease_owner": None,
        "attempts": 0,
    }


class Outbox:
    """The `outbox` collection of one service database."""

    def __init__(self, db: AsyncDatabase[Any]) -> None:
        self.db = db
        self.collection = db[COLLECTION]

    async def add(self, session: AsyncClientSession | None, *envelopes: Envelope[Any]) -> None:
        """Insert the envelopes as pending rows inside the caller's transaction."""
        if session is None or not session.in_transaction:
            # Outside a transaction the row could be committed without the state change (or
            # the reverse): exactly what the outbox exists to prevent.
            raise RuntimeError("Outbox.add must run inside run_in_transaction's session")
        if envelopes:
            now = datetime.now(UTC)
            await self.collection.insert_many(
                [outbox_row(e, now) for e in envelopes], session=session
            )

    async def ensure_indexes(self) -> None:
        """The relay's claim index, and a TTL index that drops sent rows after a week."""
        await self.collection.create_index(
            [("status", ASCENDING), ("lease_until", ASCENDING)], name="status_lease"
        )
        await self.collection.create_index(
            "sent_at", name="sent_ttl", expireAfterSeconds=int(SENT_RETENTION.total_seconds())
        )

    async def pending_count(self) -> int:
        """Rows not yet published (readiness and metrics)."""
        return await self.collection.count_documents({"status": PENDING})
