"""Event handling of the analytics service: the batch handler, and the handler table.

`HANDLERS` at the bottom is the only place the service's subscriptions appear. Analytics keeps the
raw event store and the audit trail, so its queue receives every event the catalogue routes to it
(`contracts.catalogue.CONSUMERS`: all but `PaymentRequested`, order's instruction to payment,
whose outcome analytics records).

Analytics only appends, so it consumes in batches (`bus.batch`, architecture.md "Messaging
rules"): `record_events` takes a batch of deliveries in one transaction. Exactly once comes from
the `events` collection, keyed by event id: the ids of the batch that have a row already are
skipped (no inbox rows), the new events' rows go in with one insert and only those events are
folded into the projections (`projection.fold_batch`: one `$in` read and one bulk write per
collection), in the same transaction. A loyalty grant's `PromotionGranted` goes to the outbox in
that transaction too, caused by the confirmation that earned it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from analytics_service.domain import audit_entry
from analytics_service.projection import (
    Snapshot,
    fold_batch,
    new_events,
    order_ids_of,
    stock_product_ids_of,
    user_ids_of,
)
from analytics_service.store import AnalyticsStore
from bus import HandlerContext, HandlerTable
from bus.batch import BatchContext
from contracts import SYSTEM, Envelope, Event
from contracts.catalogue import CONSUMERS
from contracts.registry import all_events


def event_row(envelope: Envelope[Event]) -> dict[str, Any]:
    """The event's row in `events`: the envelope as received, its audit entry under `audit`."""
    row = envelope.model_dump(mode="python")
    row["data"] = envelope.data.model_dump(mode="json", by_alias=True)
    row["_id"] = row.pop("id")
    row["recorded_at"] = datetime.now(UTC)
    audit = audit_entry(envelope)
    del audit["_id"]
    row["audit"] = audit
    return row


async def record_events(envelopes: Sequence[Envelope[Event]], ctx: BatchContext) -> list[str]:
    """Record the batch's new events (raw store + audit trail) and fold them into the
    projections, all in the batch's transaction; the ids recorded."""
    store = AnalyticsStore(ctx.db)
    recorded = await store.recorded({e.id for e in envelopes}, ctx.session)
    fresh = new_events(envelopes, recorded)
    if not fresh:
        return []
    await store.insert_events([event_row(e) for e in fresh], ctx.session)
    order_facts = await store.by_ids("order_facts", order_ids_of(fresh), ctx.session)
    users = user_ids_of(fresh, order_facts)
    snapshot = Snapshot(
        order_facts=order_facts,
        user_facts=await store.by_ids("user_facts", users, ctx.session),
        products=await store.by_ids("products", stock_product_ids_of(fresh), ctx.session),
        users_read=frozenset(users),
    )
    changes = fold_batch(fresh, snapshot)
    await store.apply(changes, ctx.session)
    for cause, granted in changes.grants:
        await ctx.emit(cause, granted, actor=SYSTEM)
    return [e.id for e in fresh]


async def record_event(envelope: Envelope[Event], ctx: HandlerContext) -> None:
    """`record_events` for one event, for a consumer that does not batch (the table's handler)."""
    batch = BatchContext(session=ctx.session, db=ctx.db, log=ctx.log, outbox=ctx.outbox)
    await record_events([envelope], batch)
    ctx.emitted.extend(batch.emitted)


HANDLERS: HandlerTable = {
    cls: [record_event]
    for name, cls in all_events().items()
    if "analytics" in CONSUMERS.get(name, ())
}
