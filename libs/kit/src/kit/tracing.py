"""OpenTelemetry tracing: one provider per process, OTLP export when an endpoint is set.

`setup_tracing(service, endpoint)` installs a `TracerProvider` whose resource names the service;
with an endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT`, e.g. Jaeger's `http://127.0.0.1:4318`) spans are
batched to `<endpoint>/v1/traces` over OTLP/HTTP, without one nothing leaves the process (spans
still exist, so trace ids reach logs and `traceparent` headers). It is idempotent: OpenTelemetry
allows one global provider per process, so later calls reuse it (and only add an exporter for an
endpoint not seen yet).

`export_spans(processor)` adds a processor (a test's in-memory exporter); `exporting()` says
whether any exporter is attached, so that per-command Mongo spans cost nothing when none is.

`inject_traceparent` / `extract_context` carry W3C trace context through any header mapping
(HTTP, AMQP).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, MutableMapping

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

_lock = threading.Lock()
_provider: TracerProvider | None = None
_endpoints: set[str] = set()
_exporting = False


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL of a collector base endpoint (the env variable's convention)."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith("/v1/traces") else endpoint + "/v1/traces"


def setup_tracing(service: str, otlp_endpoint: str | None = None) -> TracerProvider:
    """Install (once) the process's tracer provider; add an OTLP exporter for `otlp_endpoint`."""
    global _provider
    with _lock:
        if _provider is None:
            current = trace.get_tracer_provider()
            if isinstance(current, TracerProvider):
                _provider = current  # someone (a test, an agent) installed one already
            else:
                _provider = TracerProvider(resource=Resource.create({"service.name": service}))
                trace.set_tracer_provider(_provider)
        if otlp_endpoint and otlp_endpoint not in _endpoints:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter(endpoint=traces_url(otlp_endpoint))
            _add_processor(_provider, BatchSpanProcessor(exporter))
            _endpoints.add(otlp_endpoint)
        return _provider


def export_spans(processor: SpanProcessor, service: str = "shop") -> None:
    """Send the process's spans to `processor` too (a test's in-memory exporter, say)."""
    provider = setup_tracing(service)
    with _lock:
        _add_processor(provider, processor)


def exporting() -> bool:
    """True once spans go anywhere: detail that only a trace viewer needs (a span per Mongo
    command) is skipped while nothing would ever read it."""
    return _exporting


def _add_processor(provider: TracerProvider, processor: SpanProcessor) -> None:
    global _exporting
    provider.add_span_processor(processor)
    _exporting = True


def shutdown_tracing() -> None:
    """Flush pending spans (at process exit)."""
    if _provider is not None:
        _provider.force_flush(timeout_millis=5000)


def get_tracer(name: str) -> trace.Tracer:
    return trace.get_tracer(name)


def inject_traceparent(
    headers: MutableMapping[str, str] | None = None,
    context: otel_context.Context | None = None,
) -> MutableMapping[str, str]:
    """Add `traceparent` (and `tracestate`) of the current span to `headers`; returns them."""
    carrier: MutableMapping[str, str] = headers if headers is not None else {}
    propagate.inject(carrier, context=context)
    return carrier


def extract_context(headers: Mapping[str, str] | None) -> otel_context.Context:
    """The trace context carried by `headers` (an empty context when there is none)."""
    if not headers:
        return otel_context.Context()
    # HTTP header names are case-insensitive; the propagator looks up lower-case keys.
    carrier = {str(k).lower(): str(v) for k, v in headers.items()}
    return propagate.extract(carrier)
