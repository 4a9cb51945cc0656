"""Event handling of the analytics service: the batch handler, and the handler table.

`HANDLERS` at the bottom is the only place the service's subscriptions appear. Analytics keeps the
raw event store and the audit trail, so its queue receives every event the catalogue routes to it
(`contracts.catalogue.CONSUMERS`: all but `PaymentRequested`, order's instruction to payment,
whose outcome analytics records).

Analytics only appends, so it consumes in batches (`bus.batch`, architecture.md "Messaging
rules"): `record_events`, the batch handler `bootstrap` gives the bus, takes a batch of deliveries
in one transaction and runs one command on it (`commands.record_events`: exactly once from the
`events` collection, no inbox rows). `record_event` is the table's handler for a consumer that
does not batch (and for `bus.fake.InMemoryBus` in tests): the same command on a batch of one.
"""

from __future__ import annotations

from collections.abc import Sequence

from analytics_service import commands
from analytics_service.deps import Batch, Context
from bus import HandlerTable
from bus.batch import BatchContext
from contracts import Envelope, Event
from contracts.catalogue import CONSUMERS
from contracts.registry import all_events


async def record_events(envelopes: Sequence[Envelope[Event]], batch: Batch) -> list[str]:
    """Record a batch's new events and fold them into the projections; the ids recorded."""
    return await commands.record_events(batch.deps, envelopes, batch)


async def record_event(envelope: Envelope[Event], ctx: Context) -> None:
    """`record_events` for one event, in the handler's transaction."""
    batch = BatchContext(
        session=ctx.session, db=ctx.db, log=ctx.log, outbox=ctx.outbox, deps=ctx.deps
    )
    await record_events([envelope], batch)
    ctx.emitted.extend(batch.emitted)


HANDLERS: HandlerTable = {
    cls: [record_event]
    for name, cls in all_events().items()
    if "analytics" in CONSUMERS.get(name, ())
}
