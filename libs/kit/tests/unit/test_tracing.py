"""Trace context: propagation helpers and one server span per request."""

from __future__ import annotations

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from kit.tracing import (
    export_spans,
    extract_context,
    inject_traceparent,
    setup_tracing,
    traces_url,
)

pytestmark = pytest.mark.unit

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    export_spans(SimpleSpanProcessor(exporter), "demo")
    return exporter


def test_setup_is_idempotent() -> None:
    assert setup_tracing("demo", None) is setup_tracing("demo", None)
    assert trace.get_tracer_provider() is setup_tracing("other", None)


def test_traces_url() -> None:
    assert traces_url("http://jaeger:4318") == "http://jaeger:4318/v1/traces"
    assert traces_url("http://jaeger:4318/v1/traces/") == "http://jaeger:4318/v1/traces"


def test_inject_then_extract_keeps_the_trace(spans: InMemorySpanExporter) -> None:
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("publish") as span:
        headers = inject_traceparent({})
        sent = span.get_span_context()
    assert headers["traceparent"].split("-")[1] == format(sent.trace_id, "032x")
    context = extract_context({"Traceparent": headers["traceparent"]})
    with tracer.start_as_current_span("consume", context=context) as child:
        assert child.get_span_context().trace_id == sent.trace_id
    assert extract_context(None) is not None


async def test_each_request_is_a_server_span_continuing_the_caller(
    spans: InMemorySpanExporter, client: httpx.AsyncClient
) -> None:
    spans.clear()
    response = await client.get("/things", headers={"traceparent": PARENT})
    assert response.status_code == 200
    (span,) = [s for s in spans.get_finished_spans() if s.kind == SpanKind.SERVER]
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert span.name == "GET /things"
    assert span.attributes is not None
    assert span.attributes["http.response.status_code"] == 200


async def test_a_500_marks_the_span_as_error(
    spans: InMemorySpanExporter, client: httpx.AsyncClient
) -> None:
    spans.clear()
    await client.get("/boom")
    (span,) = [s for s in spans.get_finished_spans() if s.kind == SpanKind.SERVER]
    assert not span.status.is_ok


async def test_fallback_middleware_makes_a_server_span_named_after_the_route(
    spans: InMemorySpanExporter,
) -> None:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from kit.tracing_middleware import ServerSpanMiddleware

    async def item(request: object) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = ServerSpanMiddleware(Starlette(routes=[Route("/items/{item_id}", item)]))
    spans.clear()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/items/7", headers={"traceparent": PARENT})).status_code == 200
    (span,) = spans.get_finished_spans()
    assert span.kind == SpanKind.SERVER
    assert span.name == "GET /items/{item_id}"
    assert format(span.context.trace_id, "032x") == TRACE_ID


async def test_outgoing_http_is_a_client_span_carrying_traceparent(
    spans: InMemorySpanExporter,
) -> None:
    from kit.tracing_clients import TracingTransport

    seen: list[str] = []

    def upstream(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("traceparent", ""))
        return httpx.Response(503)

    spans.clear()
    transport = TracingTransport(httpx.MockTransport(upstream))
    async with httpx.AsyncClient(transport=transport) as client:
        with trace.get_tracer("test").start_as_current_span("handler") as parent:
            await client.get("http://inventory/api/v1/products")
            trace_id = format(parent.get_span_context().trace_id, "032x")
    (client_span,) = [s for s in spans.get_finished_spans() if s.kind == SpanKind.CLIENT]
    assert seen and seen[0].split("-")[1] == trace_id
    assert seen[0].split("-")[2] == format(client_span.context.span_id, "016x")
    assert client_span.parent is not None
    assert client_span.parent.span_id == parent.get_span_context().span_id
    assert not client_span.status.is_ok
    # The contrib instrumentation, on the stable HTTP conventions (as the server spans are).
    assert client_span.instrumentation_scope is not None
    assert client_span.instrumentation_scope.name == "opentelemetry.instrumentation.httpx"
    attributes = dict(client_span.attributes or {})
    assert client_span.name == "GET"
    assert attributes["http.request.method"] == "GET"
    assert attributes["url.full"] == "http://inventory/api/v1/products"
    assert attributes["server.address"] == "inventory"
    assert attributes["http.response.status_code"] == 503
    assert attributes["error.type"] == "503"
    assert "http.method" not in attributes and "http.status_code" not in attributes


def test_without_an_exporter_spans_are_not_recorded_but_trace_ids_propagate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kit import tracing

    # A provider as setup_tracing makes it, in a process that never attached an exporter (this
    # module's fixture attached one to the global provider, and the flag is process-wide).
    monkeypatch.setattr(tracing, "_exporting", False)
    monkeypatch.setattr(tracing, "_provider", None)  # whatever an earlier test installed
    provider = tracing.KitTracerProvider(sampler=tracing.RecordWhileExporting())
    tracer = provider.get_tracer("test")

    with tracer.start_as_current_span(
        "continued", context=extract_context({"traceparent": PARENT})
    ):
        carried = inject_traceparent({})["traceparent"]
        continued = trace.get_current_span()
    assert not continued.is_recording()
    _, trace_id, span_id, _ = carried.split("-")
    assert trace_id == TRACE_ID  # the caller's trace goes on to the next hop…
    assert span_id == format(continued.get_span_context().span_id, "016x") != PARENT.split("-")[2]

    with tracer.start_as_current_span("root") as root:
        assert not root.is_recording()
        assert root.get_span_context().is_valid  # …and a request without one still gets one
        assert inject_traceparent({})["traceparent"].split("-")[1] == format(
            root.get_span_context().trace_id, "032x"
        )
    assert not tracing.exporting()


def test_attaching_a_processor_turns_recording_on(monkeypatch: pytest.MonkeyPatch) -> None:
    from kit import tracing

    monkeypatch.setattr(tracing, "_exporting", False)
    provider = tracing.KitTracerProvider(sampler=tracing.RecordWhileExporting())
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))  # as a test adds one directly
    with provider.get_tracer("test").start_as_current_span("work") as span:
        assert span.is_recording()
    assert [s.name for s in memory.get_finished_spans()] == ["work"]
    assert tracing.exporting()


def test_a_provider_installed_by_someone_else_counts_as_exporting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    from kit import tracing

    monkeypatch.setattr(tracing, "_exporting", False)
    monkeypatch.setattr(tracing, "_provider", TracerProvider())  # an agent's: its own rules
    assert tracing.exporting()


def test_an_operators_semconv_choice_for_http_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry.instrumentation._semconv import (
        _OpenTelemetrySemanticConventionStability,
        _OpenTelemetryStabilitySignalType,
        _StabilityMode,
    )

    from kit.tracing_clients import prefer_stable_http_conventions

    modes = _OpenTelemetrySemanticConventionStability._OTEL_SEMCONV_STABILITY_SIGNAL_MAPPING
    http = _OpenTelemetryStabilitySignalType.HTTP
    # OTEL_SEMCONV_STABILITY_OPT_IN=http/dup (old and stable names side by side) stays so.
    monkeypatch.setitem(modes, http, _StabilityMode.HTTP_DUP)
    prefer_stable_http_conventions()
    assert modes[http] is _StabilityMode.HTTP_DUP
    monkeypatch.setitem(modes, http, _StabilityMode.DEFAULT)  # the variable unset
    prefer_stable_http_conventions()
    assert modes[http] is _StabilityMode.HTTP
