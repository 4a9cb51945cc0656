"""Publishing envelopes to `shop.events` with publisher confirms."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

import aio_pika
import structlog
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractMessage
from aiormq.abc import DeliveredMessage

from bus.config import BusConfig
from bus.connection import BusConnection
from bus.topology import declare_exchange
from bus.tracing import inject_headers
from contracts import Envelope

log = structlog.get_logger("bus.publisher")

JSON = "application/json"


class PublishFailed(RuntimeError):
    """The broker did not take a message (returned as unroutable, or nacked)."""


class Publisher(Protocol):
    """Anything that can publish an envelope: the AMQP publisher or the in-memory fake."""

    async def publish(
        self, envelope: Envelope[Any], headers: Mapping[str, Any] | None = None
    ) -> None: ...


def build_message(
    body: bytes,
    *,
    message_id: str,
    type_: str,
    correlation_id: str | None,
    headers: Mapping[str, Any] | None = None,
) -> aio_pika.Message:
    """A persistent JSON message carrying the envelope's id, type and correlation id."""
    return aio_pika.Message(
        body,
        content_type=JSON,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=message_id,
        type=type_,
        correlation_id=correlation_id,
        timestamp=datetime.now(UTC),
        headers=dict(headers or {}),
    )


async def publish_confirmed(
    exchange: AbstractExchange,
    message: AbstractMessage,
    routing_key: str,
    *,
    mandatory: bool,
    timeout: float | None = None,
) -> None:
    """Publish and wait for the broker's confirm; a returned (unroutable) message raises."""
    result = await exchange.publish(
        message, routing_key=routing_key, mandatory=mandatory, timeout=timeout
    )
    if isinstance(result, DeliveredMessage):
        raise PublishFailed(f"unroutable: exchange={exchange.name!r} routing_key={routing_key!r}")


class AmqpPublisher:
    """Publishes to `shop.events` on its own confirm channel; used by the relay and the gateway."""

    def __init__(self, connection: BusConnection, config: BusConfig) -> None:
        self._connection = connection
        self._config = config
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._lock = asyncio.Lock()

    async def _get_exchange(self) -> AbstractExchange:
        async with self._lock:
            if self._exchange is None:
                self._channel = await self._connection.channel()
                self._exchange = await declare_exchange(self._channel, self._config)
            return self._exchange

    async def publish(
        self, envelope: Envelope[Any], headers: Mapping[str, Any] | None = None
    ) -> None:
        """Publish one envelope now (fire-and-forget for callers that cannot use the outbox)."""
        all_headers = dict(headers or {})
        if "traceparent" not in all_headers:
            all_headers.update(inject_headers())
        await self.publish_raw(
            envelope.routing_key,
            envelope.to_json(),
            message_id=envelope.id,
            type_=envelope.type,
            correlation_id=envelope.correlation_id,
            headers=all_headers,
        )

    async def publish_raw(
        self,
        routing_key: str,
        body: bytes,
        *,
        message_id: str,
        type_: str,
        correlation_id: str | None,
        headers: Mapping[str, Any] | None = None,
    ) -> None:
        """Publish an already serialised envelope and wait for the confirm."""
        exchange = await self._get_exchange()
        message = build_message(
            body, message_id=message_id, type_=type_, correlation_id=correlation_id, headers=headers
        )
        # Not mandatory: an event nobody subscribes to yet is not an error.
        await publish_confirmed(
            exchange, message, routing_key, mandatory=False, timeout=self._config.publish_timeout
        )
        log.debug(
            "bus.published",
            service=self._config.service,
            event_id=message_id,
            correlation_id=correlation_id,
            routing_key=routing_key,
        )

    async def close(self) -> None:
        """Close the publisher's channel (the connection stays open)."""
        async with self._lock:
            if self._channel is not None and not self._channel.is_closed:
                await self._channel.close()
            self._channel = None
            self._exchange = None
