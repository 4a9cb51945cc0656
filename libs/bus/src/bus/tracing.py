"""Tracing of the bus: W3C trace context in AMQP headers (one saga is one trace across
services), and the publish and process spans named and described as OpenTelemetry's messaging
semantic conventions ask (https://opentelemetry.io/docs/specs/semconv/messaging/rabbitmq/).

In RabbitMQ the destination is the exchange: `messaging.destination.name` is `shop.events` (with
`BUS_PREFIX`) and the routing key (`order.placed`) is `messaging.rabbitmq.destination.routing_key`.
Span names are `{messaging.operation.name} {destination}` (`publish shop.events`, `process
shop.events`), low in cardinality; which event it was is in the attributes. A consumer's queue
(`order.events`, shared by every replica of the service, each message going to one of them) is
what the conventions call its consumer group, `messaging.consumer.group.name`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, Status, StatusCode

from bus.config import BusConfig
from bus.topology import Names

tracer = trace.get_tracer("bus")

SYSTEM = "rabbitmq"
AMQP_PORT = 5672
AMQPS_PORT = 5671
# (messaging.operation.name, messaging.operation.type) of the two spans the bus makes.
PUBLISH = ("publish", "send")
PROCESS = ("process", "process")

type Attributes = dict[str, str | int]


def inject_headers() -> dict[str, str]:
    """`traceparent` (and `tracestate`) of the current OpenTelemetry context."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def span_name(config: BusConfig, operation: tuple[str, str]) -> str:
    """`publish shop.events`: the conventions' `{operation name} {destination}`."""
    return f"{operation[0]} {_names(config).exchange}"


@functools.cache
def _names(config: BusConfig) -> Names:
    # Once per configuration, not per message.
    return Names.of(config)


@functools.cache
def broker_attributes(amqp_url: str) -> Mapping[str, str | int]:
    """`server.address` and `server.port` of the broker (never its credentials)."""
    url = urlsplit(amqp_url)
    default = AMQPS_PORT if url.scheme == "amqps" else AMQP_PORT
    return {"server.address": url.hostname or "localhost", "server.port": url.port or default}


def _common(
    config: BusConfig, operation: tuple[str, str], routing_key: str, message_id: str
) -> Attributes:
    return {
        "messaging.system": SYSTEM,
        "messaging.operation.name": operation[0],
        "messaging.operation.type": operation[1],
        "messaging.destination.name": _names(config).exchange,
        "messaging.rabbitmq.destination.routing_key": routing_key,
        "messaging.message.id": message_id,
        **broker_attributes(config.amqp_url),
        "shop.service": config.service,  # which one, when services share a process
    }


def publish_attributes(config: BusConfig, routing_key: str, message_id: str) -> Attributes:
    """The attributes of the relay's `publish` span (one outbox row)."""
    return _common(config, PUBLISH, routing_key, message_id)


def process_attributes(
    config: BusConfig,
    routing_key: str,
    message_id: str,
    attempt: int,
    delivery_tag: int | None = None,
) -> Attributes:
    """The attributes of a consumer's `process` span (one delivery, alone or in a batch)."""
    attributes = {
        **_common(config, PROCESS, routing_key, message_id),
        "messaging.consumer.group.name": _names(config).queue,
        # Ours, not the conventions' (they define none for RabbitMQ): 1 for a first delivery.
        "shop.messaging.attempt": attempt,
    }
    if delivery_tag is not None:
        attributes["messaging.rabbitmq.message.delivery_tag"] = delivery_tag
    return attributes


def record_failure(span: Span, exc: BaseException) -> None:
    """Mark `span` failed as the conventions say: ERROR status, the exception as an event, and
    `error.type` (the exception's class) to group failures by."""
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, str(exc)[:200]))
    span.set_attribute("error.type", type(exc).__qualname__)


def extract_context(headers: Mapping[str, Any] | None) -> otel_context.Context:
    """The OpenTelemetry context carried by message headers (empty when there is none)."""
    carrier = {
        k: v.decode() if isinstance(v, bytes) else str(v)
        for k, v in (headers or {}).items()
        if k in ("traceparent", "tracestate", "baggage")
    }
    return propagate.extract(carrier)
