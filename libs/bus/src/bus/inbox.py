"""The inbox: one row per (event id, handler), written in the handler's transaction.

A row must outlive every copy of its event that can still arrive: the outbox keeps a sent row
`SENT_RETENTION` for replay, and a replayed copy that then fails may wait in the DLQ until an
operator redrives it. The DLQ itself never expires a message (a dead letter is never dropped),
so how long one waits there is an operating assumption, `BusConfig.dlq_residency_days`
(`BUS_DLQ_RESIDENCY_DAYS`, default 14): redrive or discard dead letters within it. Rows live that
long plus the outbox retention plus a day, then a TTL index drops them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, OperationFailure

from bus.outbox import SENT_RETENTION

log = structlog.get_logger("bus.inbox")

COLLECTION = "inbox"
TTL_INDEX = "processed_ttl"
RETENTION_MARGIN = timedelta(days=1)
# The index exists with other options (MongoDB: IndexOptionsConflict; the embedded server:
# IndexKeySpecsConflict): the retention setting changed since the last start.
_INDEX_CONFLICTS = frozenset({85, 86})


def inbox_retention(dlq_residency_days: float) -> timedelta:
    """How long an inbox row is kept: past any replay from the outbox that waits out the DLQ."""
    return SENT_RETENTION + timedelta(days=dlq_residency_days) + RETENTION_MARGIN


def inbox_id(event_id: str, handler: str) -> str:
    """The row id: unique per event and handler, so each handler runs once per event."""
    return f"{event_id}|{handler}"


class Inbox:
    """The `inbox` collection of one service database."""

    def __init__(self, db: AsyncDatabase[Any]) -> None:
        self.collection = db[COLLECTION]

    async def ensure_indexes(self, retention: timedelta) -> None:
        """The TTL index that drops rows `retention` after they were processed.

        A changed retention replaces the index (the embedded server has no `collMod`): rows
        are kept meanwhile, only their expiry is recomputed.
        """
        seconds = int(retention.total_seconds())
        try:
            await self._create_ttl_index(seconds)
        except OperationFailure as exc:
            if exc.code not in _INDEX_CONFLICTS:
                raise
            log.info("bus.inbox_retention_changed", expire_after_seconds=seconds)
            await self.collection.drop_index(TTL_INDEX)
            await self._create_ttl_index(seconds)

    async def _create_ttl_index(self, seconds: int) -> None:
        await self.collection.create_index(
            "processed_at", name=TTL_INDEX, expireAfterSeconds=seconds
        )

    async def first_time(self, session: AsyncClientSession, event_id: str, handler: str) -> bool:
        """Record the event for the handler; False when it was already processed (committed).

        Call it first in the transaction: a duplicate key aborts the transaction on MongoDB, so
        the caller must stop and abort on False.
        """
        try:
            await self.collection.insert_one(
                {
                    "_id": inbox_id(event_id, handler),
                    "event_id": event_id,
                    "handler": handler,
                    "processed_at": datetime.now(UTC),
                },
                session=session,
            )
        except DuplicateKeyError:
            return False
        return True
