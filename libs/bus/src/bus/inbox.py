"""The inbox: one row per (event id, handler), written in the handler's transaction."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

COLLECTION = "inbox"


def inbox_id(event_id: str, handler: str) -> str:
    """The row id: unique per event and handler, so each handler runs once per event."""
    return f"{event_id}|{handler}"


class Inbox:
    """The `inbox` collection of one service database."""

    def __init__(self, db: AsyncDatabase[Any]) -> None:
        self.collection = db[COLLECTION]

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
