"""Client spans for what a request calls: MongoDB commands and outgoing HTTP.

The contrib instrumentation packages would do this, but their current release pins an older
OpenTelemetry SDK than ours; these two small adapters cover what we need:

- `MongoCommandTracer`: a PyMongo command listener (`connect()` registers it while spans are
  exported) that opens a CLIENT span per command (`mongo find users`), child of whatever span is
  current when the command is sent, and closes it when the server answers. Command documents
  are not recorded (they hold user data).
- `TracingTransport`: an httpx transport wrapper that opens a CLIENT span per request and injects
  its `traceparent`, so the callee's server span joins the same trace.
"""

from __future__ import annotations

import threading

import httpx
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from pymongo import monitoring

from kit.tracing import inject_traceparent

TRACER = "kit.clients"

type CommandEvent = (
    monitoring.CommandStartedEvent
    | monitoring.CommandSucceededEvent
    | monitoring.CommandFailedEvent
)


class MongoCommandTracer(monitoring.CommandListener):
    """One CLIENT span per MongoDB command."""

    def __init__(self) -> None:
        self._spans: dict[tuple[int, object], Span] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _key(event: CommandEvent) -> tuple[int, object]:
        return (event.request_id, event.connection_id)

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        target = event.command.get(event.command_name)
        collection = target if isinstance(target, str) else None
        name = f"mongo {event.command_name}" + (f" {collection}" if collection else "")
        span = trace.get_tracer(TRACER).start_span(
            name,
            kind=SpanKind.CLIENT,
            attributes={
                "db.system": "mongodb",
                "db.name": event.database_name,
                "db.operation": event.command_name,
                **({"db.mongodb.collection": collection} if collection else {}),
            },
        )
        with self._lock:
            self._spans[self._key(event)] = span

    def _finish(self, event: CommandEvent, error: str | None) -> None:
        with self._lock:
            span = self._spans.pop(self._key(event), None)
        if span is None:
            return
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, error))
        span.end()

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        self._finish(event, None)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        failure = event.failure if isinstance(event.failure, dict) else {}
        self._finish(event, str(failure.get("codeName") or "command failed"))


class TracingTransport(httpx.AsyncBaseTransport):
    """Wraps an httpx transport: a CLIENT span and a `traceparent` header per request."""

    def __init__(self, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self.inner = inner if inner is not None else httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        tracer = trace.get_tracer(TRACER)
        with tracer.start_as_current_span(
            f"HTTP {request.method}",
            kind=SpanKind.CLIENT,
            attributes={
                "http.request.method": request.method,
                "server.address": request.url.host,
                "url.path": request.url.path,
            },
        ) as span:
            inject_traceparent(request.headers)
            response = await self.inner.handle_async_request(request)
            span.set_attribute("http.response.status_code", response.status_code)
            if response.status_code >= 500:
                span.set_status(Status(StatusCode.ERROR))
            return response

    async def aclose(self) -> None:
        await self.inner.aclose()
