"""The transactional outbox: events are written with the state change, published after commit."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from bus.tracing import inject_headers
from contracts import Envelope
from kit.transactions import after_commit

COLLECTION = "outbox"
PENDING = "pending"
SENT = "sent"
# Sent rows are kept a week for inspection and replay; pending rows are never expired.
SENT_RETENTION = timedelta(days=7)


class OutboxWriter(Protocol):
    """Where a handler's emitted events go: the Mongo outbox, or the in-memory fake."""

    async def add(self, session: AsyncClientSession | None, *envelopes: Envelope[Any]) -> None: ...


def outbox_row(
    envelope: Envelope[Any],
    now: datetime | None = None,
    *,
    owner: str | None = None,
    lease_until: datetime | None = None,
) -> dict[str, Any]:
    """The document stored for one envelope; `traceparent` is taken from the current context.

    With an `owner` the row is born claimed by that relay until `lease_until`.
    """
    return {
        "_id": envelope.id,
        "routing_key": envelope.routing_key,
        "type": envelope.type,
        "correlation_id": envelope.correlation_id,
        "body": envelope.to_json().decode(),
        "headers": inject_headers(),
        "status": PENDING,
        "created_at": now or datetime.now(UTC),
        "lease_until": lease_until if owner else None,
        "lease_owner": owner,
        "attempts": 0,
    }


type HandOver = Callable[[list[dict[str, Any]]], None]


class Outbox:
    """The `outbox` collection of one service database.

    Given the `owner` id of this process's relay and its `hand_over`, rows are written already
    leased to that relay and handed to it in memory once the transaction commits: it publishes
    them without reading or claiming them (no round trip between the commit and the publish).
    Should the process die first, the lease runs out and any relay claims them from the
    collection. Without an owner, rows wait for a relay's claim.
    """

    def __init__(
        self,
        db: AsyncDatabase[Any],
        *,
        owner: str | None = None,
        hand_over: HandOver | None = None,
        lease_seconds: float = 30.0,
    ) -> None:
        if (owner is None) != (hand_over is None):
            raise ValueError("an outbox with an owner hands its rows over to that relay")
        self.db = db
        self.collection = db[COLLECTION]
        self.owner = owner
        self._hand_over = hand_over
        self.lease = timedelta(seconds=lease_seconds)

    async def add(self, session: AsyncClientSession | None, *envelopes: Envelope[Any]) -> None:
        """Insert the envelopes as pending rows inside the caller's transaction."""
        if session is None or not session.in_transaction:
            # Outside a transaction the row could be committed without the state change (or
            # the reverse): exactly what the outbox exists to prevent.
            raise RuntimeError("Outbox.add must run inside run_in_transaction's session")
        if envelopes:
            now = datetime.now(UTC)
            rows = [
                outbox_row(e, now, owner=self.owner, lease_until=now + self.lease)
                for e in envelopes
            ]
            await self.collection.insert_many(rows, session=session)
            hand_over = self._hand_over
            if hand_over is not None:
                after_commit(session, lambda: hand_over(rows))

    async def ensure_indexes(self) -> None:
        """The relay's index, and a TTL index that drops sent rows after a week.

        Every relay query asks for `status: pending` (a few rows among a week of sent ones).
        A single-field index on it: the embedded server uses single-field indexes only, and
        without one each relay pass scanned every row kept (the benchmark's growth steps).
        """
        await self.collection.create_index("status", name="status")
        await self.collection.create_index(
            "sent_at", name="sent_ttl", expireAfterSeconds=int(SENT_RETENTION.total_seconds())
        )

    async def pending_count(self) -> int:
        """Rows not yet published (readiness and metrics)."""
        return await self.collection.count_documents({"status": PENDING})
