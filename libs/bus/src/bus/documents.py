"""Single-document steps: the new state, its events and the handled event's id in one write.

architecture.md's lean forms of the outbox and the inbox, for a step whose state is one document
(an order): the write that changes the document also appends the step's pending events to the
document's `outbox` array and the handled event's inbox id to its `processed` array. One update,
atomic by itself: no transaction, no inbox row, no outbox row. After the write the rows are handed
to this process's relay, which publishes them from memory and `$pull`s them from their documents
in batches; documents whose rows outlived `own_lease_seconds` (their process died) are claimed and
published by any relay (`OutboxRelay`'s recovery pass). A redelivered event finds its id in
`processed` and changes nothing.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, Protocol

from pymongo.asynchronous.client_session import AsyncClientSession

from bus.outbox import outbox_row
from contracts import Envelope
from kit.transactions import after_commit

OUTBOX = "outbox"
PROCESSED = "processed"
# Handled event ids kept per document. A step is idempotent by its state too (a late event for a
# state the document left behind changes nothing); the ids guard the steps that are not, and an
# order sees far fewer than this many events in its life.
PROCESSED_KEPT = 64
# A recovering relay's claim on a document's rows (set on the document, not on the rows).
CLAIM_UNTIL = "outbox_claim_until"
CLAIM_OWNER = "outbox_claim_owner"
CLAIM_ID = "outbox_claim_id"

type Home = tuple[str, Any]  # (collection, document id) of rows riding in a document
type Row = dict[str, Any]


class HandsOver(Protocol):
    """The relay of this process (`OutboxRelay.hand_over`)."""

    def hand_over(self, rows: list[Row], home: Home | None = None) -> None: ...


def pending_rows(envelopes: Iterable[Envelope[Any]], now: datetime | None = None) -> list[Row]:
    """The outbox rows of a step's events, as they ride in the document."""
    at = now or datetime.now(UTC)
    return [outbox_row(e, at) for e in envelopes]


def step_update(state: dict[str, Any], rows: list[Row], processed: str | None) -> dict[str, Any]:
    """The update of one step: `$set` the new state, append its events and the handled event."""
    update: dict[str, Any] = {"$set": state}
    push: dict[str, Any] = {}
    if rows:
        push[OUTBOX] = {"$each": rows}
    if processed is not None:
        push |= processed_push(processed)
    if push:
        update["$push"] = push
    return update


def processed_push(processed: str) -> dict[str, Any]:
    """The `$push` fragment that notes a handled event's inbox id (the newest kept)."""
    return {PROCESSED: {"$each": [processed], "$slice": -PROCESSED_KEPT}}


def already_processed(doc: dict[str, Any], processed: str | None) -> bool:
    """True when the document's steps already handled this inbox id."""
    return processed is not None and processed in doc.get(PROCESSED, ())


class DocumentOutbox:
    """Where the steps on one collection's documents hand their written rows to the relay."""

    def __init__(self, collection: str, relay: HandsOver | None) -> None:
        self.collection = collection
        self._relay = relay

    def written(self, doc_id: Any, rows: list[Row], session: AsyncClientSession | None) -> None:
        """The rows are stored in document `doc_id`: publish them once that is durable (now,
        or when the session's transaction commits)."""
        if not rows or self._relay is None:
            return  # no relay here (a tool, a test): the recovery pass publishes them
        hand_over: Callable[[], None] = functools.partial(
            self._relay.hand_over, rows, (self.collection, doc_id)
        )
        if session is not None and session.in_transaction:
            after_commit(session, hand_over)
        else:
            hand_over()
