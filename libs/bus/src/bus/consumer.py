"""The consumer: one message → each handler in its own transaction with its inbox row → ack.

Ack ordering is the whole point: a message is acknowledged only after every handler committed,
or after its retry/dead-letter copy was confirmed by the broker. A process that dies anywhere in
between leaves the message unacked, so the broker redelivers it and the inbox skips the handlers
that already committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aio_pika
import structlog
from aio_pika.abc import AbstractExchange, AbstractIncomingMessage, AbstractQueue
from aio_pika.abc import AbstractRobustChannel as Channel
from opentelemetry.trace import SpanKind
from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from structlog.typing import FilteringBoundLogger

from bus import config as _config
from bus.config import CONSUMER_AFTER_COMMIT, BusConfig
from bus.connection import BusConnection
from bus.context import (
    AlreadyHandled,
    Handler,
    HandlerContext,
    HandlerTable,
    check_table,
    handler_name,
    handlers_for,
    is_deduplicated_by_state,
    is_document_step,
    routing_keys_for,
)
from bus.documents import HandsOver
from bus.inbox import Inbox, inbox_id
from bus.metrics import DEAD_LETTERED, EVENTS_CONSUMED, HANDLER_DURATION, HANDLER_FAILURES, RETRIES
from bus.outbox import Outbox
from bus.publisher import publish_confirmed
from bus.retry import Failure, attempt_of, dead_letter_headers, retry_headers
from bus.topology import Names, declare_topology
from bus.tracing import (
    PROCESS,
    extract_context,
    process_attributes,
    record_failure,
    span_name,
    tracer,
)
from contracts import ContractError, Envelope
from kit.transactions import Conflict, is_retryable, run_in_transaction

__all__ = ["Consumer", "Handler", "HandlerContext", "HandlerTable", "OnCommitted"]

log = structlog.get_logger("bus.consumer")

type OnCommitted = Callable[[Envelope[Any]], Awaitable[None]]


# A document step that lost a race (`kit.transactions.Conflict`) runs again from a fresh read this
# many times before the delivery goes to the retry queues (as a transaction's conflicts are).
DOCUMENT_STEP_ATTEMPTS = 8


class _AlreadyProcessed(AlreadyHandled):
    """The inbox already holds (event id, handler): abort the transaction and skip."""


class _NoOutbox:
    """A document step's `ctx.emit`: refused, its events ride in the document it writes."""

    async def add(self, session: AsyncClientSession | None, *envelopes: Envelope[Any]) -> None:
        raise RuntimeError("a document step stores its events in its document (bus.documents)")


class Consumer:
    """Consumes a service's queue with manual acks, retries through delay queues, then the DLQ."""

    def __init__(
        self,
        config: BusConfig,
        handlers: HandlerTable,
        mongo_client: AsyncMongoClient[Any],
        db: AsyncDatabase[Any],
        *,
        connection: BusConnection | None = None,
        outbox: Outbox | None = None,
        on_committed: OnCommitted | None = None,
        relay: HandsOver | None = None,
    ) -> None:
        check_table(handlers)
        self.config = config
        self.names = Names.of(config)
        self._handlers = handlers
        self._client = mongo_client
        self._db = db
        self._inbox = Inbox(db)
        self._outbox = outbox or Outbox(db)
        self._own_connection = connection is None
        self._connection = connection or BusConnection.for_config(config)
        # Test hook: runs between the commit and the ack (fault tests crash the process there).
        self._on_committed = on_committed
        # Fault tests (BUS_CRASH_AT=consumer.after_commit): die between the commit and the ack.
        self._crash_after_commit = config.crashes_at(CONSUMER_AFTER_COMMIT)
        self._relay = relay
        # The service's wiring, handed to every handler as `ctx.deps` (`ServiceBus.attach`).
        self.deps: Any = None
        self._channel: Channel | None = None
        self._publish_channel: Channel | None = None
        self._default_exchange: AbstractExchange | None = None
        self._queue: AbstractQueue | None = None
        self._consumer_tag: str | None = None
        self._in_flight: set[asyncio.Task[Any]] = set()
        self._slots = asyncio.Semaphore(config.handler_concurrency)

    @property
    def running(self) -> bool:
        """True while consuming on an open channel."""
        channel = self._channel
        return (
            self._consumer_tag is not None
            and channel is not None
            and not channel.is_closed
            and self._connection.is_connected
        )

    async def start(self) -> None:
        """Declare the topology and start consuming."""
        self._channel = await self._connection.channel(prefetch=self.config.prefetch)
        # Retry and DLQ copies go out on their own channel: a publishing error can never close
        # the channel the deliveries (and their pending acks) live on.
        self._publish_channel = await self._connection.channel(on_return_raises=False)
        self._default_exchange = self._publish_channel.default_exchange
        topology = await declare_topology(
            self._channel, self.config, routing_keys_for(self._handlers)
        )
        self._queue = topology.queue
        self._consumer_tag = await self._queue.consume(self._on_message)
        log.info("bus.consuming", service=self.config.service, queue=self.names.queue)

    async def stop(self, *, timeout: float = 10.0) -> None:
        """Stop taking messages, let those in flight finish, close the channels."""
        if self._queue is not None and self._consumer_tag is not None:
            with contextlib.suppress(Exception):
                await self._queue.cancel(self._consumer_tag)
        self._consumer_tag = None
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=timeout)
        for channel in (self._channel, self._publish_channel):
            if channel is not None and not channel.is_closed:
                with contextlib.suppress(Exception):
                    await channel.close()
        self._channel = self._publish_channel = None
        if self._own_connection:
            await self._connection.close()

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._in_flight.add(task)
        try:
            await self._process(message)
        except Exception as exc:  # never let one message kill the consumer
            log.exception("bus.consumer_error", service=self.config.service, error=repr(exc))
            await self._settle(message, requeue=True)
        finally:
            if task is not None:
                self._in_flight.discard(task)

    async def _read(
        self, message: AbstractIncomingMessage
    ) -> tuple[Envelope[Any] | None, dict[str, Any], int, str]:
        """The delivery's envelope (None: it did not parse and went to the DLQ), headers,
        attempt and original routing key."""
        headers = dict(message.headers or {})
        attempt = attempt_of(headers)
        routing_key = str(headers.get("x-original-routing-key") or message.routing_key or "")
        try:
            return Envelope.from_json(message.body), headers, attempt, routing_key
        except ContractError as exc:
            # A message that does not match the catalogue will never parse: no retries.
            failure = Failure(exc, attempt, routing_key, None, self.config.service)
            outcome = await self._dead_letter(message, failure, headers)
            self._count(_event_type(message), "invalid" if outcome == "dead_lettered" else outcome)
            return None, headers, attempt, routing_key

    async def _process(self, message: AbstractIncomingMessage) -> None:
        envelope, headers, attempt, routing_key = await self._read(message)
        if envelope is None:
            return

        bound = log.bind(
            service=self.config.service,
            event_id=envelope.id,
            event_type=envelope.type,
            correlation_id=envelope.correlation_id,
            routing_key=routing_key,
            attempt=attempt,
        )
        with tracer.start_as_current_span(
            span_name(self.config, PROCESS),
            context=extract_context(headers),
            kind=SpanKind.CONSUMER,
            attributes=process_attributes(
                self.config, routing_key, envelope.id, attempt, message.delivery_tag
            ),
        ) as span:
            fresh = False
            for handler in handlers_for(self._handlers, type(envelope.data)):
                name = handler_name(handler)
                try:
                    fresh = (
                        await self._run_handler(handler, name, envelope, attempt, bound) or fresh
                    )
                except Exception as exc:
                    record_failure(span, exc)
                    HANDLER_FAILURES.labels(self.config.service, name, envelope.type).inc()
                    failure = Failure(exc, attempt, routing_key, name, self.config.service)
                    self._count(envelope.type, await self._fail(message, failure, headers, bound))
                    return
        if self._on_committed is not None:
            await self._on_committed(envelope)
        if self._crash_after_commit and fresh:
            _config.crash()
        await self._settle(message)
        self._count(
            envelope.type, "ok" if fresh or not self._has_handlers(envelope) else "duplicate"
        )

    def _has_handlers(self, envelope: Envelope[Any]) -> bool:
        return bool(handlers_for(self._handlers, type(envelope.data)))

    def _count(self, event_type: str, outcome: str) -> None:
        EVENTS_CONSUMED.labels(self.config.service, event_type, outcome).inc()

    async def _run_handler(
        self,
        handler: Handler,
        name: str,
        envelope: Envelope[Any],
        attempt: int,
        bound: FilteringBoundLogger,
    ) -> bool:
        """Run one handler in its transaction; False when its inbox had the event already."""
        handler_log = bound.bind(handler=name)
        started = time.perf_counter()
        if is_document_step(handler):
            return await self._run_document_step(handler, name, envelope, attempt, handler_log)

        inbox = not is_deduplicated_by_state(handler)

        async def body(session: AsyncClientSession) -> HandlerContext:
            if inbox and not await self._inbox.first_time(session, envelope.id, name):
                raise _AlreadyProcessed
            ctx = HandlerContext(
                session=session,
                db=self._db,
                envelope=envelope,
                log=handler_log,
                outbox=self._outbox,
                handler=name,
                attempt=attempt,
                deps=self.deps,
            )
            await handler(envelope, ctx)
            return ctx

        try:
            async with self._slots:
                ctx = await run_in_transaction(self._client, body)
        except AlreadyHandled:
            handler_log.debug("bus.duplicate_skipped")
            return False
        emitted = len(ctx.emitted)
        elapsed = time.perf_counter() - started
        HANDLER_DURATION.labels(self.config.service, name).observe(elapsed)
        # Per delivery, so debug: the consumed-events counter and the handler-duration histogram
        # (bus.metrics) count every one of them; failures and retries stay warnings.
        handler_log.debug("bus.handled", emitted=emitted, duration_ms=round(elapsed * 1e3))
        return True

    async def _run_document_step(
        self,
        handler: Handler,
        name: str,
        envelope: Envelope[Any],
        attempt: int,
        handler_log: FilteringBoundLogger,
    ) -> bool:
        """Run a single-document step: one write, no transaction, no inbox row (`bus.documents`);
        False when its document had handled the event already."""
        started = time.perf_counter()
        for tries in range(1, DOCUMENT_STEP_ATTEMPTS + 1):
            ctx = HandlerContext(
                session=None,
                db=self._db,
                envelope=envelope,
                log=handler_log,
                outbox=_NoOutbox(),
                handler=name,
                attempt=attempt,
                processed=inbox_id(envelope.id, name),
                relay=self._relay,
                deps=self.deps,
            )
            try:
                async with self._slots:
                    await handler(envelope, ctx)
                break
            except Conflict:
                if tries == DOCUMENT_STEP_ATTEMPTS:
                    raise
                await asyncio.sleep(min(0.25, 0.005 * 2**tries) * random.uniform(0.5, 1.5))
        run_commit_hooks(ctx.commit_hooks, handler_log)  # its write landed
        if ctx.duplicate:
            handler_log.debug("bus.duplicate_skipped")
            return False
        elapsed = time.perf_counter() - started
        HANDLER_DURATION.labels(self.config.service, name).observe(elapsed)
        handler_log.debug("bus.handled", duration_ms=round(elapsed * 1e3))
        return True

    async def _fail(
        self,
        message: AbstractIncomingMessage,
        failure: Failure,
        headers: dict[str, Any],
        bound: FilteringBoundLogger,
    ) -> str:
        """Retry or dead-letter a failed delivery; the outcome for the consumed counter."""
        limit = (
            self.config.retryable_attempts
            if is_retryable(failure.error)
            else self.config.max_attempts
        )
        if failure.attempt >= limit:
            return await self._dead_letter(message, failure, headers)
        delay = self.config.delay_for(failure.attempt)
        copy = self._copy(message, retry_headers(headers, failure, self.config.error_max_length))
        # Confirmed copy first, ack second: dying in between only duplicates the message.
        if await self._send(copy, self.names.retry_queue(delay)):
            bound.warning(
                "bus.retry_scheduled",
                handler=failure.handler,
                error=repr(failure.error),
                delay_s=delay,
                next_attempt=failure.attempt + 1,
            )
            RETRIES.labels(self.config.service, _event_type(message)).inc()
            await self._settle(message)
            return "retried"
        await self._requeue_later(message)
        return "requeued"

    async def _dead_letter(
        self, message: AbstractIncomingMessage, failure: Failure, headers: dict[str, Any]
    ) -> str:
        copy = self._copy(
            message, dead_letter_headers(headers, failure, self.config.error_max_length)
        )
        if await self._send(copy, self.names.dlq):
            log.error(
                "bus.dead_lettered",
                service=self.config.service,
                message_id=message.message_id,
                routing_key=failure.routing_key,
                handler=failure.handler,
                attempts=failure.attempt,
                error=repr(failure.error),
            )
            DEAD_LETTERED.labels(self.config.service, _event_type(message)).inc()
            await self._settle(message)
            return "dead_lettered"
        await self._requeue_later(message)
        return "requeued"

    async def _requeue_later(self, message: AbstractIncomingMessage) -> None:
        # The copy could not be placed (broker trouble): hand the message back after a pause
        # rather than spinning; the delivery limit dead-letters it if this never recovers.
        await asyncio.sleep(self.config.reconnect_interval)
        await self._settle(message, requeue=True)

    @staticmethod
    def _copy(message: AbstractIncomingMessage, headers: dict[str, Any]) -> aio_pika.Message:
        return aio_pika.Message(
            message.body,
            headers=headers,
            content_type=message.content_type,
            content_encoding=message.content_encoding,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=message.message_id,
            correlation_id=message.correlation_id,
            type=message.type,
            timestamp=message.timestamp,
        )

    async def _send(self, copy: aio_pika.Message, queue: str) -> bool:
        """Publish a copy straight to a queue and wait for the confirm; False if it failed."""
        assert self._default_exchange is not None
        try:
            # mandatory: a missing delay queue must fail loudly, not drop the message.
            await publish_confirmed(
                self._default_exchange,
                copy,
                queue,
                mandatory=True,
                timeout=self.config.publish_timeout,
            )
        except Exception as exc:
            log.warning(
                "bus.copy_failed", service=self.config.service, queue=queue, error=repr(exc)
            )
            return False
        return True

    async def _settle(self, message: AbstractIncomingMessage, *, requeue: bool = False) -> None:
        """Ack (or requeue); on a dead channel the broker redelivers the message anyway."""
        try:
            if requeue:
                # Requeued deliveries count towards the quorum queue's delivery limit, which
                # dead-letters a message that keeps failing this way.
                await message.nack(requeue=True)
            else:
                await message.ack()
        except Exception as exc:
            log.warning("bus.settle_failed", service=self.config.service, error=repr(exc))


def run_commit_hooks(hooks: list[Callable[[], None]], handler_log: FilteringBoundLogger) -> None:
    """Call what waited for a handler's commit; a hook's failure is logged, never the handler's
    (its writes are committed already)."""
    for callback in hooks:
        try:
            callback()
        except Exception as exc:
            handler_log.warning("bus.after_commit_failed", error=repr(exc))


def _event_type(message: AbstractIncomingMessage) -> str:
    return str(message.type or "unknown")
