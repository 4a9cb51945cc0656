"""Batch consuming, for a consumer that only appends (analytics): many deliveries, one transaction.

architecture.md, "Messaging rules": a consumer that only appends may take deliveries in small
batches (one bulk write per batch, acked after it) as long as each event is applied exactly once.
Per event, `Consumer` costs a transaction, an inbox row and the handler's own writes; a batch of
fifty costs one transaction and one bulk write per collection it changes.

- Deliveries are gathered up to `max_batch`, or until `max_wait` has passed since the first of
  them arrived; the parsed ones go to ONE batch handler in ONE transaction; each delivery is acked
  after the commit (manual acks; the channel's prefetch holds two batches, so the next one
  gathers while one commits). Batches run one at a time, in delivery order.
- No inbox rows: the batch handler keeps a record of its own keyed by event id (analytics: the
  `events` collection) and, in the same transaction, applies only the events that record lacks
  and records them. A redelivered event, or one delivered twice within a batch, is applied once.
  The handler returns the ids it applied; the others are counted as duplicates.
- An unparseable delivery goes straight to the DLQ, as with `Consumer` (its code, not a copy).
- A batch whose transaction fails for a reason of the moment (`kit.transactions.is_retryable`,
  after `run_in_transaction`'s own retries) goes to the delay queues as a whole. Any other
  failure means one of its events is poison: the deliveries are then handled one at a time (each
  a batch of one, with the consumer's retry and DLQ path), so the poison one is retried and
  dead-lettered alone while its neighbours commit. A delivery on its second attempt or later (a
  retry copy: it failed before) is handled alone from the start, so it cannot fail a batch again.
- Tracing: one consumer span per delivery, in the trace its headers carry; the transaction runs
  in the first delivery's span, and an event emitted on behalf of a delivery carries that
  delivery's trace (`BatchContext.emit`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, cast

import structlog
from aio_pika.abc import AbstractIncomingMessage
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind
from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from structlog.typing import FilteringBoundLogger

from bus import config as _config
from bus.config import BusConfig
from bus.connection import BusConnection
from bus.consumer import Consumer, OnCommitted
from bus.context import HandlerTable, handler_name
from bus.metrics import HANDLER_DURATION, HANDLER_FAILURES
from bus.outbox import Outbox, OutboxWriter
from bus.retry import Failure
from bus.tracing import (
    PROCESS,
    extract_context,
    process_attributes,
    record_failure,
    span_name,
    tracer,
)
from contracts import Actor, Envelope, Event
from kit.transactions import after_commit, is_retryable, run_in_transaction

__all__ = ["BatchConsumer", "BatchContext", "BatchHandler", "Batching"]

log = structlog.get_logger("bus.batch")


@dataclass(slots=True)
class BatchContext[D = Any]:
    """A batch handler's transaction, database, a logger and a way to emit events; `deps` is
    the service's wiring, as a handler's `ctx.deps` (`HandlerContext`)."""

    session: AsyncClientSession | None
    db: AsyncDatabase[Any]
    log: FilteringBoundLogger
    outbox: OutboxWriter
    emitted: list[Envelope[Any]] = field(default_factory=list)
    # The consumer span of each delivery, by event id: an emitted event continues its cause's trace.
    spans: dict[str, Span] = field(default_factory=dict)
    deps: D = cast(Any, None)

    async def emit[E: Event](
        self, cause: Envelope[Any], event: E, *, actor: Actor | None = None
    ) -> Envelope[E]:
        """Write `event`, caused by `cause` (one of the batch), to the outbox, same transaction."""
        envelope = cause.caused(event, actor=actor)
        with self._in_trace_of(cause.id):
            # The outbox row takes its traceparent from the current span: the cause's.
            await self.outbox.add(self.session, envelope)
        self.emitted.append(envelope)
        return envelope

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Call `callback()` once the batch's transaction has committed (never on an abort)."""
        if self.session is not None:
            after_commit(self.session, callback)

    @contextlib.contextmanager
    def _in_trace_of(self, event_id: str) -> Iterator[None]:
        span = self.spans.get(event_id)
        if span is None:
            yield
            return
        with trace.use_span(span, end_on_exit=False):
            yield


type BatchHandler = Callable[[Sequence[Envelope[Any]], BatchContext], Awaitable[Collection[str]]]
"""Apply, in order, the envelopes whose ids it has not applied before (a batch may hold one id
twice); the ids it applied. It runs inside the batch's transaction and may run again (conflicts)."""


@dataclass(frozen=True, slots=True)
class Batching:
    """How a service consumes in batches: its batch handler, and how batches are cut."""

    handler: BatchHandler
    max_batch: int = 50
    max_wait: float = 0.05

    def __post_init__(self) -> None:
        if self.max_batch < 1 or self.max_wait <= 0:
            raise ValueError("max_batch must be at least 1 and max_wait positive")

    @property
    def name(self) -> str:
        """The handler's stable name (metrics, logs, dead-letter headers)."""
        return handler_name(cast(Any, self.handler))


@dataclass(slots=True)
class _Delivery:
    message: AbstractIncomingMessage
    envelope: Envelope[Any]
    headers: dict[str, Any]
    attempt: int
    routing_key: str


class BatchConsumer(Consumer):
    """`Consumer` whose deliveries go to one batch handler, many per transaction.

    The handler table still says what the queue binds and which events are handled (an event of
    a type without handlers is acked, as by `Consumer`); the batch handler takes them all.
    """

    def __init__(
        self,
        config: BusConfig,
        handlers: HandlerTable,
        mongo_client: AsyncMongoClient[Any],
        db: AsyncDatabase[Any],
        *,
        batching: Batching,
        connection: BusConnection | None = None,
        outbox: Outbox | None = None,
        on_committed: OnCommitted | None = None,
    ) -> None:
        # Two batches in flight: one committing while the next gathers.
        prefetch = max(config.prefetch, 2 * batching.max_batch)
        super().__init__(
            replace(config, prefetch=prefetch),
            handlers,
            mongo_client,
            db,
            connection=connection,
            outbox=outbox,
            on_committed=on_committed,
        )
        self._batching = batching
        self._name = batching.name
        self._arrivals: asyncio.Queue[tuple[AbstractIncomingMessage, float] | None] = (
            asyncio.Queue()
        )
        self._worker: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def running(self) -> bool:
        """True while consuming on an open channel with the batch worker alive."""
        worker = self._worker
        return super().running and worker is not None and not worker.done()

    async def start(self) -> None:
        """Declare the topology, start consuming and the worker that handles the batches."""
        self._stopping = False
        await super().start()
        self._worker = asyncio.create_task(self._work(), name=f"bus-batch-{self.config.service}")

    async def stop(self, *, timeout: float = 10.0) -> None:
        """Let the batch being handled finish (and be acked), then stop as `Consumer` does.

        Deliveries gathered but not handled are never acked: closing the channel returns them
        to the queue.
        """
        self._stopping = True
        worker, self._worker = self._worker, None
        if worker is not None:
            self._arrivals.put_nowait(None)  # wakes a worker waiting for a first delivery
            await asyncio.wait({worker}, timeout=timeout)
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        self._arrivals = asyncio.Queue()
        await super().stop(timeout=timeout)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        if not self._stopping:  # else left unacked: closing the channel returns it
            self._arrivals.put_nowait((message, time.monotonic()))

    async def _work(self) -> None:
        while not self._stopping:
            batch = await self._gather()
            if not batch:
                return
            try:
                await self._handle(batch)
            except Exception as exc:  # never let one batch kill the worker
                log.exception("bus.batch_error", service=self.config.service, error=repr(exc))
                for message in batch:
                    if not message.processed:
                        await self._settle(message, requeue=True)

    async def _gather(self) -> list[AbstractIncomingMessage]:
        """The next batch: up to `max_batch` deliveries, `max_wait` after the first arrived."""
        first = await self._arrivals.get()
        if first is None or self._stopping:
            return []
        message, arrived = first
        batch = [message]
        deadline = arrived + self._batching.max_wait
        while len(batch) < self._batching.max_batch:
            try:
                arrival = self._arrivals.get_nowait()
            except asyncio.QueueEmpty:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    arrival = await asyncio.wait_for(self._arrivals.get(), left)
                except TimeoutError:
                    break
            if arrival is None:  # stopping: handle what was gathered, then stop
                break
            batch.append(arrival[0])
        return batch

    async def _handle(self, batch: list[AbstractIncomingMessage]) -> None:
        together: list[_Delivery] = []
        alone: list[_Delivery] = []
        for message in batch:
            delivery = await self._parse(message)
            if delivery is not None:
                (together if delivery.attempt == 1 else alone).append(delivery)
        if len(together) == 1:
            alone.insert(0, together.pop())
        if together:
            await self._handle_batch(together)
        for delivery in alone:
            await self._handle_one(delivery, self._span(delivery, 1))

    async def _parse(self, message: AbstractIncomingMessage) -> _Delivery | None:
        """The delivery's envelope; None when it was settled here (dead-lettered, unhandled)."""
        envelope, headers, attempt, routing_key = await self._read(message)
        if envelope is None:
            return None
        if not self._has_handlers(envelope):
            await self._settle(message)
            self._count(envelope.type, "ok")
            return None
        return _Delivery(message, envelope, headers, attempt, routing_key)

    async def _handle_batch(self, deliveries: list[_Delivery]) -> None:
        spans = [self._span(d, len(deliveries)) for d in deliveries]
        started = time.perf_counter()
        try:
            ctx, applied = await self._transact(deliveries, spans)
        except Exception as exc:
            HANDLER_FAILURES.labels(self.config.service, self._name, "batch").inc()
            if is_retryable(exc):
                # Not the events' fault (an unreachable or overloaded database): all of them
                # wait in the delay queues, each counting an attempt (their copies confirmed
                # together, not one round trip after the other).
                await asyncio.gather(
                    *(
                        self._failed_and_ended(delivery, span, exc)
                        for delivery, span in zip(deliveries, spans, strict=True)
                    )
                )
                return
            log.warning(
                "bus.batch_failed",
                service=self.config.service,
                size=len(deliveries),
                error=repr(exc),
                then="one at a time",
            )
            for delivery, span in zip(deliveries, spans, strict=True):
                await self._handle_one(delivery, span)
            return
        try:
            await self._finish(deliveries, ctx, applied, started)
        finally:
            for span in spans:
                span.end()

    async def _handle_one(self, delivery: _Delivery, span: Span) -> None:
        """A batch of one, with the consumer's retry and dead-letter path when it fails."""
        with _ending(span):
            started = time.perf_counter()
            try:
                ctx, applied = await self._transact([delivery], [span])
            except Exception as exc:
                HANDLER_FAILURES.labels(
                    self.config.service, self._name, delivery.envelope.type
                ).inc()
                await self._failed(delivery, span, exc)
                return
            await self._finish([delivery], ctx, applied, started)

    async def _failed_and_ended(self, delivery: _Delivery, span: Span, exc: Exception) -> None:
        with _ending(span):
            await self._failed(delivery, span, exc)

    async def _failed(self, delivery: _Delivery, span: Span, exc: Exception) -> None:
        """Retry or dead-letter one delivery whose transaction failed (`Consumer._fail`)."""
        record_failure(span, exc)
        envelope = delivery.envelope
        failure = Failure(
            exc, delivery.attempt, delivery.routing_key, self._name, self.config.service
        )
        bound = log.bind(
            service=self.config.service,
            event_id=envelope.id,
            event_type=envelope.type,
            correlation_id=envelope.correlation_id,
            routing_key=delivery.routing_key,
            attempt=delivery.attempt,
        )
        outcome = await self._fail(delivery.message, failure, delivery.headers, bound)
        self._count(envelope.type, outcome)

    async def _transact(
        self, deliveries: list[_Delivery], spans: list[Span]
    ) -> tuple[BatchContext, set[str]]:
        envelopes = [d.envelope for d in deliveries]
        by_id: dict[str, Span] = {}
        for delivery, span in zip(deliveries, spans, strict=True):
            by_id.setdefault(delivery.envelope.id, span)
        batch_log = log.bind(service=self.config.service, handler=self._name)

        async def body(session: AsyncClientSession) -> tuple[BatchContext, set[str]]:
            # Built afresh per attempt: a retried body must not inherit emitted events.
            ctx = BatchContext(
                session=session,
                db=self._db,
                log=batch_log,
                outbox=self._outbox,
                spans=by_id,
                deps=self.deps,
            )
            applied = await self._batching.handler(envelopes, ctx)
            return ctx, set(applied)

        # The transaction's own spans (Mongo commands) go under the first delivery's span.
        with trace.use_span(spans[0], end_on_exit=False):
            return await run_in_transaction(self._client, body)

    async def _finish(
        self,
        deliveries: list[_Delivery],
        ctx: BatchContext,
        applied: set[str],
        started: float,
    ) -> None:
        """After the commit (its hooks ran in `run_in_transaction`): ack each delivery and count
        it (emitted rows reach the relay through the outbox's hand-over)."""
        if self._on_committed is not None:
            for delivery in deliveries:
                await self._on_committed(delivery.envelope)
        if self._crash_after_commit and applied:
            _config.crash()
        counted: set[str] = set()
        for delivery in deliveries:
            await self._settle(delivery.message)
            event_id = delivery.envelope.id
            self._count(
                delivery.envelope.type,
                "ok" if event_id in applied and event_id not in counted else "duplicate",
            )
            counted.add(event_id)
        elapsed = time.perf_counter() - started
        HANDLER_DURATION.labels(self.config.service, self._name).observe(elapsed)
        log.info(
            "bus.batch_handled",
            service=self.config.service,
            handler=self._name,
            size=len(deliveries),
            applied=len(applied),
            emitted=len(ctx.emitted),
            duration_ms=round(elapsed * 1e3),
        )

    def _span(self, delivery: _Delivery, batch_size: int) -> Span:
        return tracer.start_span(
            span_name(self.config, PROCESS),
            context=extract_context(delivery.headers),
            kind=SpanKind.CONSUMER,
            attributes={
                **process_attributes(
                    self.config,
                    delivery.routing_key,
                    delivery.envelope.id,
                    delivery.attempt,
                    delivery.message.delivery_tag,
                ),
                "messaging.batch.message_count": batch_size,
            },
        )


@contextlib.contextmanager
def _ending(span: Span) -> Iterator[None]:
    """End `span` on the way out, whatever happens inside (unlike `use_span`, not current)."""
    try:
        yield
    finally:
        span.end()
