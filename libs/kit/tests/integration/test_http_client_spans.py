"""An outgoing call through kit's traced httpx transport, over a real socket to a kit app: the
callee receives `traceparent` and its server span is the child of the caller's client span."""

from __future__ import annotations

from typing import ClassVar

import httpx
import pytest
from fastapi import APIRouter, Request
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from pydantic_settings import SettingsConfigDict

from devkit.testing import serving
from kit.app import create_app
from kit.settings import ServiceSettings
from kit.tracing import export_spans
from kit.tracing_clients import TracingTransport

pytestmark = pytest.mark.integration


class CalleeSettings(ServiceSettings):
    service_name: ClassVar[str] = "callee"
    model_config = SettingsConfigDict(env_prefix="CALLEE_")


async def test_a_call_carries_traceparent_and_the_callee_continues_the_client_span() -> None:
    exporter = InMemorySpanExporter()
    export_spans(SimpleSpanProcessor(exporter), "caller")
    received: list[str] = []
    router = APIRouter()

    @router.get("/api/v1/things/{thing_id}")
    async def thing(thing_id: str, request: Request) -> dict[str, str]:
        received.append(request.headers.get("traceparent", ""))
        return {"thing": thing_id}

    app = create_app(CalleeSettings(env="test"), title="callee", routers=[router])
    async with serving(app) as url:
        async with httpx.AsyncClient(transport=TracingTransport(), base_url=url) as client:
            with trace.get_tracer("test").start_as_current_span("handler") as parent:
                response = await client.get("/api/v1/things/7")
    assert response.status_code == 200

    trace_id = parent.get_span_context().trace_id
    spans = [s for s in exporter.get_finished_spans() if s.context.trace_id == trace_id]
    (client_span,) = [s for s in spans if s.kind is SpanKind.CLIENT]
    (server_span,) = [s for s in spans if s.kind is SpanKind.SERVER]
    assert client_span.parent is not None
    assert client_span.parent.span_id == parent.get_span_context().span_id
    (traceparent,) = received
    assert traceparent.split("-")[1:3] == [
        f"{trace_id:032x}",
        f"{client_span.context.span_id:016x}",
    ]
    assert server_span.parent is not None
    assert server_span.parent.span_id == client_span.context.span_id
    assert (client_span.attributes or {})["http.response.status_code"] == 200
    assert (client_span.attributes or {})["url.full"] == f"{url}/api/v1/things/7"
