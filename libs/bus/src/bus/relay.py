"""The outbox relay: publishes committed rows with confirms and marks them sent, in batches.

Rows written by this process come in memory, handed over when their transaction commits
(`Outbox`); rows nobody holds (a dead process's, once their lease ran out) are claimed from the
collection with a lease. Marks are batched: one update per `relay_mark_interval` (or per
`relay_batch_size` rows) instead of one per commit. A crash before the mark only republishes the
rows after their lease, a duplicate that the consumers' inboxes absorb.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import structlog
from aio_pika.exceptions import DeliveryError
from opentelemetry.trace import SpanKind
from pymongo import ASCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from bus import config as _config
from bus.config import RELAY_BEFORE_PUBLISH, BusConfig
from bus.documents import CLAIM_ID, CLAIM_OWNER, CLAIM_UNTIL, OUTBOX, Home, Row
from bus.metrics import EVENTS_PUBLISHED
from bus.outbox import COLLECTION, PENDING, SENT
from bus.publisher import PublishFailed
from bus.tracing import (
    PUBLISH,
    extract_context,
    inject_headers,
    publish_attributes,
    record_failure,
    span_name,
    tracer,
)
from contracts import new_id
from kit.transactions import run_in_transaction

log = structlog.get_logger("bus.relay")


class RawPublisher(Protocol):
    """What the relay needs from a publisher: send serialised bytes and wait for the confirm."""

    async def publish_raw(
        self,
        routing_key: str,
        body: bytes,
        *,
        message_id: str,
        type_: str,
        correlation_id: str | None,
        headers: Mapping[str, Any] | None = None,
    ) -> None: ...


class OutboxRelay:
    """Publishes a service's outbox. Several may run: a lease gives each row to one at a time.

    A crash between the broker's confirm and marking the row sent publishes the row again after
    the lease expires: a duplicate that the consumers' inboxes absorb. Nothing committed is lost.
    """

    def __init__(
        self,
        db: AsyncDatabase[Any],
        publisher: RawPublisher,
        config: BusConfig,
        *,
        owner: str | None = None,
    ) -> None:
        self._db = db
        self._rows = db[COLLECTION]
        self._publisher = publisher
        self._config = config
        self.owner = owner or f"{config.service}-{new_id()}"
        self._wake = asyncio.Event()
        # Committed rows handed over by this process's outboxes, not published yet, each with
        # its home: None for the outbox collection, (collection, id) for a document's outbox.
        self._fresh: list[tuple[Row, Home | None]] = []
        # Published and confirmed, not marked sent yet; when the first of them was confirmed.
        self._unmarked: list[tuple[str, Home | None]] = []
        self._unmarked_since = 0.0
        # The claim pass (a read, usually finding nothing) runs once per poll interval, or at once
        # after `notify`; waking for handed-over rows or due marks does not repeat it.
        self._claim_now = True
        self._last_claim = 0.0
        self._task: asyncio.Task[None] | None = None
        self._log = log.bind(service=config.service, relay=self.owner)
        # Fault tests (BUS_CRASH_AT=relay.before_publish): die holding claimed, unpublished rows.
        self._crash_before_publish = config.crashes_at(RELAY_BEFORE_PUBLISH)

    def notify(self) -> None:
        """Look for claimable rows now instead of at the next poll (call after committing rows
        written without an owner, e.g. by a sweeper's plain `Outbox`)."""
        self._claim_now = True
        self._wake.set()

    def hand_over(self, rows: list[Row], home: Home | None = None) -> None:
        """Take rows this process just made durable; publish them next. `home` names the
        document they ride in (`bus.documents`); without it they are outbox-collection rows
        leased to this relay."""
        self._fresh.extend((row, home) for row in rows)
        self._wake.set()

    @property
    def running(self) -> bool:
        """True while the relay task is alive."""
        return self._task is not None and not self._task.done()

    def start(self) -> asyncio.Task[None]:
        """Run the relay loop as a background task."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name=f"outbox-relay-{self.owner}")
        return self._task

    async def stop(self) -> None:
        """Cancel the loop, then mark what was confirmed (unconfirmed rows are handed back)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        # Rows handed over but not published: any relay may take them now, not after the lease.
        fresh, self._fresh = self._fresh, []
        if fresh:
            await self._release(fresh)
        with contextlib.suppress(Exception):  # Mongo down: the rows go out again, duplicates
            await self._flush_marks()

    async def run(self) -> None:
        """Publish until cancelled, surviving broker and database outages without losing rows."""
        while True:
            self._wake.clear()
            try:
                published = await self._publish_next_batch()
                if self._marks_due():
                    await self._flush_marks()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Broker or Mongo unreachable: the rows stay pending; try again shortly.
                self._log.warning("relay.pass_failed", error=repr(exc))
                await asyncio.sleep(self._config.reconnect_interval)
                continue
            if published >= self._config.relay_batch_size or self._fresh:
                continue  # more rows are probably waiting
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._idle_wait())

    def _idle_wait(self) -> float:
        """Until the next poll, or until the pending marks are due if that comes first."""
        if not self._unmarked:
            return self._config.relay_poll_interval
        due = self._unmarked_since + self._config.relay_mark_interval - time.monotonic()
        return max(0.0, min(self._config.relay_poll_interval, due))

    def _marks_due(self) -> bool:
        return bool(self._unmarked) and (
            len(self._unmarked) >= self._config.relay_batch_size
            or time.monotonic() - self._unmarked_since >= self._config.relay_mark_interval
        )

    async def publish_pending_once(self) -> int:
        """Publish one batch (claiming if nothing was handed over) and mark everything confirmed
        so far; the count marked sent."""
        self._claim_now = True
        await self._publish_next_batch()
        return await self._flush_marks()

    async def _publish_next_batch(self) -> int:
        """Take one batch, publish it; the count the broker confirmed (marked later).

        The batch is the rows handed over in memory first, else rows nobody holds or whose
        lease ran out, claimed in a transaction.
        """
        batch = await self._next_batch()
        if batch and self._crash_before_publish:
            _config.crash()
        confirmed = 0
        for index, (row, home) in enumerate(batch):
            try:
                await self._publish(row)
            except (DeliveryError, PublishFailed) as exc:
                # The broker refused this one (e.g. a full queue): its lease makes it wait
                # before the next try, while the rest of the batch goes on.
                self._log.warning("relay.publish_refused", event_id=row["_id"], error=repr(exc))
                if home is None and not row.get("attempts"):
                    await self._count_attempt(row["_id"])
                continue
            except BaseException:
                # Connection lost: give back the rows not confirmed so that any relay can
                # publish them as soon as the broker is back (a lost confirm → a duplicate).
                await self._release(batch[index:])
                raise
            if not self._unmarked:
                self._unmarked_since = time.monotonic()
            self._unmarked.append((row["_id"], home))
            confirmed += 1
            EVENTS_PUBLISHED.labels(self._config.service, row["type"]).inc()
        return confirmed

    async def _next_batch(self) -> list[tuple[Row, Home | None]]:
        if self._fresh:
            size = self._config.relay_batch_size
            batch, self._fresh = self._fresh[:size], self._fresh[size:]
            return batch
        now = time.monotonic()
        if not self._claim_now and now - self._last_claim < self._config.relay_poll_interval:
            return []
        self._claim_now, self._last_claim = False, now
        claimed: list[tuple[Row, Home | None]] = [(row, None) for row in await self._claim()]
        for collection in self._config.document_outboxes:
            if claimed:
                break
            claimed = await self._claim_documents(collection)
        return claimed

    async def _claim(self) -> list[dict[str, Any]]:
        now = datetime.now(UTC)
        lease_until = now + timedelta(seconds=self._config.lease_seconds)
        claimable = {
            "status": PENDING,
            "$or": [{"lease_until": None}, {"lease_until": {"$lte": now}}],
        }

        # Candidates first, outside any transaction: the usual answer is none (one read per
        # poll, no commit). Then take them with one conditional update and read back what this
        # claim got, in a transaction: two relays racing for a row conflict, one of them retries
        # and moves on to rows nobody holds. (Claiming row by row with find_one_and_update was
        # ten times slower on the embedded server.)
        return await self._take(
            self._rows,
            claimable,
            {"lease_until": lease_until, "lease_owner": self.owner},
            inc={"attempts": 1},
            sort=[("created_at", ASCENDING), ("_id", ASCENDING)],
        )

    async def _take(
        self,
        docs: AsyncCollection[Any],
        claimable: dict[str, Any],
        fields: dict[str, Any],
        *,
        inc: dict[str, int] | None = None,
        sort: list[tuple[str, int]] | None = None,
        projection: dict[str, int] | None = None,
    ) -> list[dict[str, Any]]:
        """Claim up to a batch of `claimable` documents of `docs` for this relay (setting
        `fields` and a claim id), and the documents this claim got."""
        candidates = await docs.find(
            claimable, projection={"_id": 1}, sort=sort, limit=self._config.relay_batch_size
        ).to_list()
        if not candidates:
            return []
        ids = [c["_id"] for c in candidates]

        async def claim(session: AsyncClientSession) -> list[dict[str, Any]]:
            claim_id = new_id()
            update: dict[str, Any] = {"$set": {**fields, CLAIM_ID: claim_id}}
            if inc:
                update["$inc"] = inc
            await docs.update_many({"_id": {"$in": ids}, **claimable}, update, session=session)
            found: list[dict[str, Any]] = await docs.find(
                {"_id": {"$in": ids}, CLAIM_ID: claim_id},
                projection=projection,
                sort=sort,
                session=session,
            ).to_list()
            return found

        return await run_in_transaction(self._db.client, claim)

    async def _claim_documents(self, collection: str) -> list[tuple[Row, Home | None]]:
        """Claim documents whose rows should have gone out by now (their process died)."""
        now = datetime.now(UTC)
        stale = now - timedelta(seconds=self._config.own_lease_seconds)
        lease_until = now + timedelta(seconds=self._config.lease_seconds)
        docs = self._db[collection]
        claimable = {
            f"{OUTBOX}.created_at": {"$lte": stale},
            "$or": [{CLAIM_UNTIL: None}, {CLAIM_UNTIL: {"$lte": now}}],
        }

        claimed = await self._take(
            docs,
            claimable,
            {CLAIM_UNTIL: lease_until, CLAIM_OWNER: self.owner},
            projection={OUTBOX: 1},
        )
        return [
            (row, (collection, doc["_id"]))
            for doc in claimed
            for row in sorted(doc.get(OUTBOX, ()), key=lambda r: (r["created_at"], r["_id"]))
        ]

    async def _publish(self, row: Mapping[str, Any]) -> None:
        stored: Mapping[str, Any] = row.get("headers") or {}
        routing_key: str = row["routing_key"]
        with tracer.start_as_current_span(
            span_name(self._config, PUBLISH),
            context=extract_context(stored),
            kind=SpanKind.PRODUCER,
            attributes=publish_attributes(self._config, routing_key, row["_id"]),
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            headers = {**stored, **inject_headers()}
            body = row["body"]
            try:
                await self._publisher.publish_raw(
                    routing_key,
                    body.encode() if isinstance(body, str) else bytes(body),
                    message_id=row["_id"],
                    type_=row["type"],
                    correlation_id=row.get("correlation_id"),
                    headers=headers,
                )
            except Exception as exc:
                record_failure(span, exc)
                raise

    async def _count_attempt(self, row_id: str) -> None:
        # A refused row of this relay's own (never claimed, so never counted) leaves the
        # after-commit path and waits for its lease like a claimed one.
        await self._rows.update_one({"_id": row_id}, {"$inc": {"attempts": 1}})

    async def _flush_marks(self) -> int:
        """Mark every confirmed row sent, in one update; the count marked."""
        if not self._unmarked:
            return 0
        ids = self._unmarked
        self._unmarked = []
        try:
            return await self._mark_sent(ids)
        except BaseException:
            # Not marked: keep them for the next flush (if this process lives that long, else
            # they go out again after their lease, duplicates the inboxes absorb).
            self._unmarked = ids + self._unmarked
            raise

    async def _mark_sent(self, items: list[tuple[str, Home | None]]) -> int:
        # Outbox-collection rows are marked sent (kept a week); a document's rows are pulled
        # from it. In one transaction although each is one update: on the embedded server a
        # write outside any transaction makes overlapping transactions fail and retry
        # (measured: 3x the aborts).
        ids, pulls = _by_home(items)

        async def mark(session: AsyncClientSession) -> int:
            marked = 0
            if ids:
                result = await self._rows.update_many(
                    {"_id": {"$in": ids}, "status": PENDING, "lease_owner": self.owner},
                    {"$set": {"status": SENT, "sent_at": datetime.now(UTC), "lease_until": None}},
                    session=session,
                )
                marked += result.modified_count
            for collection, (doc_ids, row_ids) in pulls.items():
                await self._db[collection].update_many(
                    {"_id": {"$in": list(doc_ids)}},
                    {"$pull": {OUTBOX: {"_id": {"$in": row_ids}}}},
                    session=session,
                )
                marked += len(row_ids)
            return marked

        marked = await run_in_transaction(self._db.client, mark)
        self._log.debug("relay.marked_sent", count=marked)
        return marked

    async def _release(self, batch: list[tuple[Row, Home | None]]) -> None:
        # Rows of the outbox collection lose their lease; documents this relay claimed lose
        # the claim (rows handed over in memory were never claimed: they wait their lease out).
        ids, claimed = _by_home([(row["_id"], home) for row, home in batch])

        async def release(session: AsyncClientSession) -> None:
            if ids:
                await self._rows.update_many(
                    {"_id": {"$in": ids}, "status": PENDING, "lease_owner": self.owner},
                    {"$set": {"lease_until": None, "lease_owner": None}},
                    session=session,
                )
            for collection, (doc_ids, _) in claimed.items():
                await self._db[collection].update_many(
                    {"_id": {"$in": list(doc_ids)}, CLAIM_OWNER: self.owner},
                    {"$set": {CLAIM_UNTIL: None, CLAIM_OWNER: None}},
                    session=session,
                )

        with contextlib.suppress(Exception):  # Mongo down too: the lease expires by itself
            await run_in_transaction(self._db.client, release)


def _by_home(
    items: list[tuple[str, Home | None]],
) -> tuple[list[str], dict[str, tuple[set[Any], list[str]]]]:
    """Row ids of the outbox collection, and per collection of documents carrying rows the
    documents' ids and the rows' ids."""
    ids: list[str] = []
    by_collection: dict[str, tuple[set[Any], list[str]]] = {}
    for row_id, home in items:
        if home is None:
            ids.append(row_id)
        else:
            doc_ids, row_ids = by_collection.setdefault(home[0], (set(), []))
            doc_ids.add(home[1])
            row_ids.append(row_id)
    return ids, by_collection
