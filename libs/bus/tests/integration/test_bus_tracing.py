"""One trace from the writer's span, through the outbox and relay, into the handler."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from bus import BusConfig, BusConnection, HandlerContext, ServiceBus
from contracts import Envelope, Event
from contracts.registry import event
from devkit.bus_testing import eventually

pytestmark = pytest.mark.integration


@event("test")
class BusTracePing(Event):
    key: str


async def test_trace_id_travels_from_outbox_writer_through_relay_to_handler(
    make_config: Callable[..., BusConfig],
    mongo_client: AsyncMongoClient[Any],
    db: AsyncDatabase[Any],
    connection: BusConnection,
    exporter: InMemorySpanExporter,
) -> None:
    config = make_config()
    seen: list[int] = []

    async def note_trace(envelope: Envelope[BusTracePing], ctx: HandlerContext) -> None:
        seen.append(trace.get_current_span().get_span_context().trace_id)

    bus = ServiceBus(config, {BusTracePing: [note_trace]}, mongo_client, db, connection=connection)
    await bus.start()
    try:
        envelope = Envelope.wrap(BusTracePing(key="t"), correlation_id="trace")
        with trace.get_tracer("test").start_as_current_span("POST /orders") as root:
            trace_id = root.get_span_context().trace_id

            async def body(session: AsyncClientSession) -> None:
                await bus.outbox.add(session, envelope)

            await bus.write(body)  # commits, then wakes the relay
        row = await db.outbox.find_one({"_id": envelope.id})
        assert row is not None and row["headers"]["traceparent"].split("-")[1] == f"{trace_id:032x}"
        await eventually(lambda: len(seen) >= 1, what="the handler")
        assert set(seen) == {trace_id}  # (the body may run twice on a write conflict)

        def spans() -> dict[str, Any]:
            finished = exporter.get_finished_spans()
            return {s.name: s for s in finished if s.context and s.context.trace_id == trace_id}

        await eventually(lambda: len(spans()) >= 3, what="root, publish and process spans")
        spans_by_name = spans()
        exchange = f"{config.prefix}shop.events"
        publish = spans_by_name[f"publish {exchange}"]
        process = spans_by_name[f"process {exchange}"]
        assert publish.kind is SpanKind.PRODUCER and process.kind is SpanKind.CONSUMER
        # OpenTelemetry's messaging conventions for RabbitMQ: the destination is the exchange,
        # the routing key has its own attribute.
        host, port = urlsplit(config.amqp_url).hostname, urlsplit(config.amqp_url).port or 5672
        common = {
            "messaging.system": "rabbitmq",
            "messaging.destination.name": exchange,
            "messaging.rabbitmq.destination.routing_key": BusTracePing.ROUTING_KEY,
            "messaging.message.id": envelope.id,
            "server.address": host,
            "server.port": port,
            "shop.service": config.service,
        }
        assert dict(publish.attributes or {}) == {
            **common,
            "messaging.operation.name": "publish",
            "messaging.operation.type": "send",
        }
        processed = dict(process.attributes or {})
        delivery_tag = processed.pop("messaging.rabbitmq.message.delivery_tag")
        assert isinstance(delivery_tag, int) and delivery_tag >= 1
        assert processed == {
            **common,
            "messaging.operation.name": "process",
            "messaging.operation.type": "process",
            "messaging.consumer.group.name": f"{config.prefix}{config.service}.events",
            "shop.messaging.attempt": 1,
        }
        assert (
            publish.parent is not None and publish.parent.span_id == root.get_span_context().span_id
        )
        assert process.parent is not None and process.parent.span_id == publish.context.span_id
    finally:
        await bus.stop()


async def test_a_failed_delivery_is_an_error_span_and_its_retry_counts_the_attempt(
    make_config: Callable[..., BusConfig],
    mongo_client: AsyncMongoClient[Any],
    db: AsyncDatabase[Any],
    connection: BusConnection,
    exporter: InMemorySpanExporter,
) -> None:
    config = make_config()
    calls: list[int] = []

    async def fail_once(envelope: Envelope[BusTracePing], ctx: HandlerContext) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("the first delivery fails")

    bus = ServiceBus(config, {BusTracePing: [fail_once]}, mongo_client, db, connection=connection)
    await bus.start()
    try:
        envelope = Envelope.wrap(BusTracePing(key="again"), correlation_id="retry")
        await bus.publisher.publish(envelope)

        def processed() -> list[Any]:
            return [
                s
                for s in exporter.get_finished_spans()
                if s.kind is SpanKind.CONSUMER
                and (s.attributes or {}).get("messaging.message.id") == envelope.id
            ]

        await eventually(lambda: len(processed()) >= 2, what="the delivery and its retry")
        first, second = sorted(processed(), key=lambda s: s.start_time or 0)
        assert (first.attributes or {})["shop.messaging.attempt"] == 1
        assert (first.attributes or {})["error.type"] == "RuntimeError"
        assert not first.status.is_ok
        assert (second.attributes or {})["shop.messaging.attempt"] == 2
        assert "error.type" not in (second.attributes or {}) and second.status.is_ok
    finally:
        await bus.stop()
