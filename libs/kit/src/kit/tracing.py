"""OpenTelemetry tracing: one provider per process, OTLP export when an endpoint is set.

`setup_tracing(service, endpoint)` installs a `TracerProvider` whose resource names the service;
with an endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT`, e.g. Jaeger's `http://127.0.0.1:4318`) spans are
batched to `<endpoint>/v1/traces` over OTLP/HTTP. It is idempotent: OpenTelemetry allows one
global provider per process, so later calls reuse it (and only add an exporter for an endpoint
not seen yet).

Without an exporter nothing would ever read a span, so none is recorded: the provider's sampler
drops every span while no processor is attached, which leaves only what propagation needs (a
trace id, from the caller's `traceparent` or new, and a span id), so trace ids still reach the
logs and the `traceparent` of every HTTP call, outbox row and AMQP message. Those unrecorded
spans carry the W3C "sampled" flag 0; once an exporter is attached every span is recorded
whatever its parent's flag, so a process that exports still records its part of a trace that a
process without an exporter began.

`export_spans(processor)` adds a processor (a test's in-memory exporter) and with it turns
recording on; `exporting()` says whether spans are recorded, so that detail only a trace viewer
needs (a span per Mongo command, `kit.mongo`) is not even set up when none is.

`inject_traceparent` / `extract_context` carry W3C trace context through any header mapping
(HTTP, AMQP).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, MutableMapping, Sequence

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    Sampler,
    SamplingResult,
)
from opentelemetry.trace import Link, SpanKind, TraceState
from opentelemetry.util.types import Attributes

_lock = threading.Lock()
_provider: TracerProvider | None = None
_endpoints: set[str] = set()
_exporting = False


class RecordWhileExporting(Sampler):
    """Records (and samples) every span once an exporter is attached, none before."""

    def should_sample(
        self,
        parent_context: otel_context.Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        chosen = ALWAYS_ON if _exporting else ALWAYS_OFF
        return chosen.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return "RecordWhileExporting"


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
                _provider = KitTracerProvider(
                    resource=Resource.create({"service.name": service}),
                    sampler=RecordWhileExporting(),
                )
                trace.set_tracer_provider(_provider)
        if otlp_endpoint and otlp_endpoint not in _endpoints:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter(endpoint=traces_url(otlp_endpoint))
            _provider.add_span_processor(BatchSpanProcessor(exporter))
            _endpoints.add(otlp_endpoint)
        return _provider


def export_spans(processor: SpanProcessor, service: str = "shop") -> None:
    """Send the process's spans to `processor` too (a test's in-memory exporter, say)."""
    provider = setup_tracing(service)
    with _lock:
        provider.add_span_processor(processor)


class KitTracerProvider(TracerProvider):
    """The SDK provider, noting when spans start going somewhere (whoever attaches the
    processor: kit, or a test adding one to the global provider directly)."""

    def add_span_processor(self, span_processor: SpanProcessor) -> None:
        global _exporting
        super().add_span_processor(span_processor)
        _exporting = True


def exporting() -> bool:
    """True once spans are recorded and go somewhere: always under a provider someone else
    installed (an agent's, a test's: it records by its own rules)."""
    return _exporting or (_provider is not None and not isinstance(_provider, KitTracerProvider))


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
