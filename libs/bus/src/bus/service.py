"""A service's whole bus: connection, consumer and outbox relay, started and stopped together."""

from __future__ import annotations

import contextlib
from typing import Any

import aio_pika
import structlog
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from bus.batch import BatchConsumer, Batching
from bus.config import BusConfig
from bus.connection import BusConnection
from bus.consumer import Consumer, OnCommitted
from bus.context import HandlerTable
from bus.inbox import Inbox, inbox_retention
from bus.outbox import Outbox
from bus.publisher import AmqpPublisher
from bus.relay import OutboxRelay
from bus.topology import declare_peer_queues
from kit.transactions import TransactionBody, run_in_transaction

log = structlog.get_logger("bus.service")


class ServiceBus:
    """Consumer + relay of one service over one robust connection; `outbox` for HTTP writes."""

    def __init__(
        self,
        config: BusConfig,
        handlers: HandlerTable,
        mongo_client: AsyncMongoClient[Any],
        db: AsyncDatabase[Any],
        *,
        connection: BusConnection | None = None,
        on_committed: OnCommitted | None = None,
        batching: Batching | None = None,
    ) -> None:
        self.config = config
        self._client = mongo_client
        self._inbox = Inbox(db)
        self._own_connection = connection is None
        self.connection = connection or BusConnection.for_config(config)
        self.publisher = AmqpPublisher(self.connection, config)
        self.relay = OutboxRelay(db, self.publisher, config)
        self.outbox = Outbox(
            db,
            owner=self.relay.owner,
            hand_over=self.relay.hand_over,
            lease_seconds=config.own_lease_seconds,
        )
        # Every service declares its queue, even with an empty handler table: the queue exists
        # (and collects its bindings) from the first start on.
        # `batching`: a consumer that only appends takes its deliveries in batches (bus.batch).
        self.consumer = (
            Consumer(
                config,
                handlers,
                mongo_client,
                db,
                connection=self.connection,
                outbox=self.outbox,
                on_committed=on_committed,
                relay=self.relay,
            )
            if batching is None
            else BatchConsumer(
                config,
                handlers,
                mongo_client,
                db,
                batching=batching,
                connection=self.connection,
                outbox=self.outbox,
                on_committed=on_committed,
            )
        )
        self._started = False

    def attach(self, handlers: HandlerTable, deps: object) -> None:
        """Hand the service's wiring to its handlers (`ctx.deps`); the table is the one given at
        construction (`handlers` is there for buses that learn it only now, the in-memory one)."""
        self.consumer.deps = deps

    async def start(self) -> None:
        """Connect, create the outbox and inbox indexes, start consuming and relaying."""
        if self._started:
            return
        await self.connection.connect()
        await self.outbox.ensure_indexes()
        if not isinstance(self.consumer, BatchConsumer):  # batches keep no inbox (bus.batch)
            await self._inbox.ensure_indexes(inbox_retention(self.config.dlq_residency_days))
        await self._declare_peer_queues()
        await self.consumer.start()
        self.relay.start()
        self._started = True

    async def _declare_peer_queues(self) -> None:
        # On a channel of its own: a peer queue declared elsewhere with other arguments closes
        # the channel (PRECONDITION_FAILED); that is the peer's business, not a reason to fail.
        channel = await self.connection.channel()
        try:
            await declare_peer_queues(channel, self.config)
        except aio_pika.exceptions.AMQPError as exc:
            log.warning("bus.peer_queues_not_declared", error=repr(exc))
        finally:
            with contextlib.suppress(Exception):
                await channel.close()

    async def stop(self) -> None:
        """Stop the relay, drain the consumer, close the connection if this bus opened it."""
        await self.relay.stop()
        await self.consumer.stop()
        await self.publisher.close()
        if self._own_connection:
            await self.connection.close()
        self._started = False

    def ready(self) -> bool:
        """Broker connected, consumer running and relay alive (for `/readyz`)."""
        return self._started and self.consumer.running and self.relay.running

    async def write[T](self, body: TransactionBody[T]) -> T:
        """Run `body(session)` with `run_in_transaction` (HTTP writes); the rows `self.outbox`
        wrote reach the relay once it commits."""
        return await run_in_transaction(self._client, body)

    def notify(self) -> None:
        """Have the relay claim now: rows were committed without an owner (a sweeper's)."""
        self.relay.notify()
