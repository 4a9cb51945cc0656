"""One order is one trace: gateway → order over HTTP (and its calls to user and inventory) →
outbox → AMQP → every consumer in every service → what they emit → … → the capture, with the
Mongo commands of each step in it.

The whole shop runs in this process (tests/e2e/shop.py), so one in-memory exporter on the
process's tracer provider sees every service's spans; the service of a span is its HTTP server's
port, or the `shop.service` attribute of the bus's publish and process spans, or the database of
a Mongo command. Between processes the same context travels in the `traceparent` HTTP header,
the outbox row and the AMQP headers, which is what this test crosses.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from bus.context import handlers_for
from contracts.registry import event_class
from devkit.bus_testing import eventually
from kit.tracing import export_spans, inject_traceparent

from .shop import Shop, running_shop

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(120)]

SERVICES = ("user", "inventory", "order", "payment", "shipping", "notify", "analytics")
EXPORTER = InMemorySpanExporter()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shop(mongo_url: str, amqp_url: str, run_prefix: str) -> AsyncIterator[Shop]:
    processor = SimpleSpanProcessor(EXPORTER)
    export_spans(processor, "shop-e2e")
    try:
        async with running_shop(
            mongo_url, amqp_url, run_prefix, with_notify=True, with_analytics=True
        ) as running:
            yield running
    finally:
        processor.shutdown()  # the exporter keeps nothing from later tests in this process
        EXPORTER.clear()


def consumers_of(event_type: str) -> set[str]:
    """The services whose handler table handles `event_type`."""
    cls = event_class(event_type)
    return {
        name
        for name in SERVICES
        if handlers_for(importlib.import_module(f"{name}_service.handlers").HANDLERS, cls)
    }


def attr(span: ReadableSpan, name: str) -> Any:
    return (span.attributes or {}).get(name)


class Journey:
    """The spans of one trace, and which service each belongs to."""

    def __init__(self, shop: Shop, trace_id: int) -> None:
        self.trace_id = trace_id
        self.ports = {app.state.settings.port: name for name, app in shop.apps.items()}
        self.ports[shop.client.base_url.port or 0] = "gateway"
        self.db_prefix = shop.apps["user"].state.settings.db_prefix
        self.exchange = f"{shop.apps['user'].state.settings.bus_prefix}shop.events"

    def spans(self) -> list[ReadableSpan]:
        return [
            s
            for s in EXPORTER.get_finished_spans()
            if s.context is not None and s.context.trace_id == self.trace_id
        ]

    def service(self, span: ReadableSpan) -> str | None:
        if span.kind is SpanKind.SERVER:
            return self.ports.get(attr(span, "server.port"))
        if attr(span, "shop.service"):
            return str(attr(span, "shop.service"))
        database = attr(span, "db.namespace")
        if database:
            return str(database).removeprefix(self.db_prefix)
        return None

    def messaging(self, kind: SpanKind) -> set[tuple[str | None, str]]:
        """(service, message id) of the trace's publish or process spans."""
        return {
            (self.service(s), str(attr(s, "messaging.message.id")))
            for s in self.spans()
            if s.kind is kind
        }


async def test_a_whole_order_is_one_trace_across_every_service(shop: Shop) -> None:
    product = await shop.product(stock=5, price_cents=1_500)
    customer = await shop.customer()

    with trace.get_tracer("test").start_as_current_span("customer clicks Buy") as root:
        journey = Journey(shop, root.get_span_context().trace_id)
        headers = {**customer.headers, "Idempotency-Key": "trace-1"}
        inject_traceparent(headers)
        body = {"items": [{"productId": product, "quantity": 1}]}
        placed = await shop.client.post("/api/v1/orders", json=body, headers=headers)
    assert placed.status_code == 202, placed.text
    order_id = placed.json()["orderId"]
    await shop.wait_for(order_id, "CONFIRMED")

    def journey_messages() -> dict[str, dict[str, Any]]:
        """Every event of this order on the bus (the probe sees them all), by id."""
        found = {}
        for message in shop.probe.messages:
            envelope = json.loads(message.body)
            if envelope["correlationId"] == order_id:
                found[envelope["id"]] = {"envelope": envelope, "headers": message.headers}
        return found

    def expected_processing() -> set[tuple[str | None, str]]:
        return {
            (service, event_id)
            for event_id, m in journey_messages().items()
            for service in consumers_of(m["envelope"]["type"])
        }

    async def every_consumer_done() -> bool:
        messages = journey_messages()
        types = {m["envelope"]["type"] for m in messages.values()}
        return "PaymentCaptured" in types and expected_processing() <= journey.messaging(
            SpanKind.CONSUMER
        )

    try:
        await eventually(every_consumer_done, timeout=30, what="every consumer of the events")
    except AssertionError:
        kinds = {i: m["envelope"]["type"] for i, m in journey_messages().items()}
        missing = expected_processing() - journey.messaging(SpanKind.CONSUMER)
        pytest.fail(f"not processed in this trace: {[(s, kinds[i]) for s, i in missing]}")
    messages = journey_messages()
    types = {m["envelope"]["type"] for m in messages.values()}
    assert {
        "OrderPlaced",
        "StockReserved",
        "PaymentRequested",
        "PaymentAuthorized",
        "OrderPaid",
        "StockCommitted",
        "OrderConfirmed",
        "PaymentCaptured",
    } <= types

    # Every event of the saga went out with this trace's context in its AMQP headers, from a
    # publish span of this trace, in the service that emitted it.
    trace_hex = f"{journey.trace_id:032x}"
    for event_id, message in messages.items():
        traceparent = str((message["headers"] or {}).get("traceparent", ""))
        assert traceparent.split("-")[1:2] == [trace_hex], message["envelope"]["type"]
        source = message["envelope"]["source"]
        assert (source, event_id) in journey.messaging(SpanKind.PRODUCER), (source, event_id)

    # Named and described as OpenTelemetry's RabbitMQ conventions say: the exchange is the
    # destination, the routing key is its own attribute.
    for span in journey.spans():
        if span.kind in (SpanKind.PRODUCER, SpanKind.CONSUMER):
            operation = "publish" if span.kind is SpanKind.PRODUCER else "process"
            assert span.name == f"{operation} {journey.exchange}", span.name
            assert attr(span, "messaging.destination.name") == journey.exchange
            event_id = str(attr(span, "messaging.message.id"))
            if event_id in messages:
                routing_key = event_class(messages[event_id]["envelope"]["type"]).ROUTING_KEY
                assert attr(span, "messaging.rabbitmq.destination.routing_key") == routing_key

    # Every delivery of those events, in every service that consumes them, continued the trace:
    # none of them appears in another trace.
    spans = journey.spans()
    elsewhere = {
        (journey.service(s), str(attr(s, "messaging.message.id")))
        for s in EXPORTER.get_finished_spans()
        if s.kind is SpanKind.CONSUMER
        and str(attr(s, "messaging.message.id")) in messages
        and s.context is not None
        and s.context.trace_id != journey.trace_id
    }
    assert not elsewhere, elsewhere
    processed = journey.messaging(SpanKind.CONSUMER)
    assert {service for service, _ in processed} == set(SERVICES)

    # HTTP: the gateway's server span and the order service's, then whatever the order service
    # asked user or inventory (only what its replicas lack), each in its own service's span.
    http = {(journey.service(s), s.name) for s in spans if s.kind is SpanKind.SERVER}
    assert ("gateway", "POST /api/v1/{path}") in http
    assert ("order", "POST /api/v1/orders") in http
    assert {service for service, _ in http} <= {"gateway", *SERVICES}, http
    clients = {s.context.span_id for s in spans if s.kind is SpanKind.CLIENT and s.context}
    for server in spans:
        if server.kind is SpanKind.SERVER and journey.service(server) != "gateway":
            # Called over HTTP by another service's client span, which sent the traceparent.
            assert server.parent is not None and server.parent.span_id in clients, server.name

    # Mongo: each service's commands for this order are client spans of the same trace. Not
    # analytics': it records a batch of deliveries (of many traces) in one transaction, which
    # runs under the batch's first delivery's span (bus.batch); its consumer spans of this
    # order's events are in this trace (above).
    mongo = {journey.service(s) for s in spans if attr(s, "db.system.name") == "mongodb"}
    assert set(SERVICES) - {"analytics"} <= mongo

    # One tree: every span's parent is in the trace (the test's own span is the root).
    ids = {s.context.span_id for s in spans if s.context is not None}
    orphans = [s.name for s in spans if s.parent is not None and s.parent.span_id not in ids]
    roots = [s.name for s in spans if s.parent is None]
    assert roots == ["customer clicks Buy"] and not orphans, (roots, orphans)
