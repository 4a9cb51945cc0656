"""W3C trace context in AMQP headers, so that one saga is one trace across services."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace

tracer = trace.get_tracer("bus")


def inject_headers() -> dict[str, str]:
    """`traceparent` (and `tracestate`) of the current OpenTelemetry context."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def process_attributes(
    service: str, routing_key: str, message_id: str, attempt: int
) -> dict[str, str | int]:
    """The attributes of a consumer's `process` span (one delivery, alone or in a batch)."""
    return {
        "messaging.system": "rabbitmq",
        "shop.service": service,  # which one, when services share a process
        "messaging.operation.type": "process",
        "messaging.destination.name": routing_key,
        "messaging.message.id": message_id,
        "messaging.rabbitmq.attempt": attempt,
    }


def extract_context(headers: Mapping[str, Any] | None) -> otel_context.Context:
    """The OpenTelemetry context carried by message headers (empty when there is none)."""
    carrier = {
        k: v.decode() if isinstance(v, bytes) else str(v)
        for k, v in (headers or {}).items()
        if k in ("traceparent", "tracestate", "baggage")
    }
    return propagate.extract(carrier)
