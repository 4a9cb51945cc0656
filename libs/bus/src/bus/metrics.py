"""The bus's Prometheus metrics (through `kit.metrics`), and the scrape-time sampler.

Counted where they happen (consumer and relay), labelled by the service that did it:

- `shop_events_consumed_total{service,type,outcome}`: one per delivery, `outcome` one of `ok`,
  `duplicate` (the inbox had seen it), `retried` (sent to a delay queue), `dead_lettered`,
  `invalid` (not a catalogue event: straight to the DLQ) or `requeued` (broker trouble);
- `shop_events_published_total{service,type}`: outbox rows the broker confirmed;
- `shop_handler_failures_total{service,handler,type}`: a handler raised (each attempt counts);
- `shop_event_retries_total{service,type}`, `shop_events_dead_lettered_total{service,type}`;
- `shop_event_handler_duration_seconds{service,handler}`: one handler's committed transaction.

Sampled when `/metrics` is scraped (`BusSampler`, registered by `bus.runtime.service_lifespan`),
from reads only: `shop_queue_depth{service}` (deliveries waiting in `<service>.events`, the
consumer's backlog) and `shop_dlq_depth{service}` (passive queue declares),
`shop_outbox_pending{service}` and `shop_outbox_lag_seconds{service}` (age of the oldest
unpublished row; 0 when none).
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any

from aio_pika.abc import AbstractChannel
from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from bus.config import BusConfig
from bus.connection import BusConnection
from bus.documents import OUTBOX
from bus.outbox import COLLECTION, PENDING
from bus.topology import Names
from kit import metrics
from kit.mongo import as_utc

EVENTS_CONSUMED = metrics.counter(
    "shop_events_consumed_total",
    "Deliveries taken from the service's queue, by event type and outcome.",
    ["service", "type", "outcome"],
)
EVENTS_PUBLISHED = metrics.counter(
    "shop_events_published_total",
    "Outbox rows published and confirmed by the broker.",
    ["service", "type"],
)
HANDLER_FAILURES = metrics.counter(
    "shop_handler_failures_total",
    "Handler runs that raised (every attempt counts).",
    ["service", "handler", "type"],
)
RETRIES = metrics.counter(
    "shop_event_retries_total",
    "Deliveries sent to a delay queue for another attempt.",
    ["service", "type"],
)
DEAD_LETTERED = metrics.counter(
    "shop_events_dead_lettered_total",
    "Deliveries moved to the service's dead-letter queue.",
    ["service", "type"],
)
HANDLER_DURATION = metrics.histogram(
    "shop_event_handler_duration_seconds",
    "One handler's transaction (inbox row, handler, emitted events), committed.",
    ["service", "handler"],
)
QUEUE_DEPTH = metrics.gauge(
    "shop_queue_depth",
    "Deliveries ready in the service's queue, not yet taken by its consumer.",
    ["service"],
)
DLQ_DEPTH = metrics.gauge(
    "shop_dlq_depth", "Messages waiting in the service's dead-letter queue.", ["service"]
)
OUTBOX_PENDING = metrics.gauge(
    "shop_outbox_pending",
    "Outbox rows not yet published (a document carrying pending rows counts once).",
    ["service"],
)
OUTBOX_LAG = metrics.gauge(
    "shop_outbox_lag_seconds",
    "Age of the oldest unpublished outbox row (0 when the outbox is drained).",
    ["service"],
)


async def sample_outbox(
    service: str, db: AsyncDatabase[Any], documents: tuple[str, ...] = ()
) -> None:
    """Set the outbox gauges: the outbox collection's pending rows and the documents of
    `documents` that carry pending rows (`bus.documents`), and the oldest of them all."""
    rows = db[COLLECTION]
    pending = await rows.count_documents({"status": PENDING})
    oldest = await rows.find_one(
        {"status": PENDING}, projection={"created_at": 1}, sort=[("created_at", ASCENDING)]
    )
    times = [oldest.get("created_at")] if oldest else []
    for collection in documents:
        field = f"{OUTBOX}.created_at"
        carrying = {f"{OUTBOX}.0": {"$exists": True}}
        pending += await db[collection].count_documents(carrying)
        doc = await db[collection].find_one(
            carrying, projection={field: 1}, sort=[(field, ASCENDING)]
        )
        times += [r.get("created_at") for r in (doc or {}).get(OUTBOX, ())]
    lag = 0.0
    created = [as_utc(t) for t in times if isinstance(t, datetime)]
    if created:
        lag = max(0.0, (datetime.now(UTC) - min(created)).total_seconds())
    OUTBOX_PENDING.labels(service=service).set(pending)
    OUTBOX_LAG.labels(service=service).set(lag)


class BusSampler:
    """Reads the queue and DLQ depths and the outbox's state when Prometheus scrapes (no
    writes)."""

    def __init__(
        self, config: BusConfig, connection: BusConnection, db: AsyncDatabase[Any]
    ) -> None:
        self._config = config
        self._connection = connection
        self._db = db
        self._channel: AbstractChannel | None = None

    async def __call__(self) -> None:
        service = self._config.service
        await sample_outbox(service, self._db, self._config.document_outboxes)
        if self._connection.is_connected:
            names = Names.of(self._config)
            QUEUE_DEPTH.labels(service=service).set(await self._depth(names.queue))
            DLQ_DEPTH.labels(service=service).set(await self._depth(names.dlq))

    async def _depth(self, queue: str) -> int:
        # Own channel: a passive declare that fails closes its channel, never the consumer's.
        if self._channel is None or self._channel.is_closed:
            self._channel = await self._connection.channel()
        raw = await self._channel.get_underlay_channel()
        declared = await raw.queue_declare(queue, passive=True)
        return int(declared.message_count or 0)

    async def close(self) -> None:
        """Close the sampler's channel."""
        if self._channel is not None and not self._channel.is_closed:
            with contextlib.suppress(Exception):
                await self._channel.close()
        self._channel = None
