"""A server span per HTTP request, continuing the caller's `traceparent`.

Small on purpose: the span is named `METHOD /route/{template}` once routing has matched (the
raw path until then), records the status code, and marks 5xx answers as errors.
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kit.tracing import extract_context

TRACER = "kit.http"


class ServerSpanMiddleware:
    """Starts a SERVER span around each HTTP request (pure ASGI)."""

    def __init__(self, app: ASGIApp, *, service: str = "") -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope.get("method", "GET")
        path = scope.get("path", "")
        parent = extract_context(dict(Headers(scope=scope)))
        tracer = trace.get_tracer(TRACER)
        with tracer.start_as_current_span(
            f"{method} {path}",
            context=parent,
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": method,
                "url.path": path,
                "url.scheme": scope.get("scheme", "http"),
                "service.component": self.service,
            },
            record_exception=True,
            set_status_on_exception=True,
        ) as span:

            async def send_with_status(message: Message) -> None:
                if message["type"] == "http.response.start":
                    status = int(message["status"])
                    span.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        span.set_status(Status(StatusCode.ERROR))
                await send(message)

            try:
                await self.app(scope, receive, send_with_status)
            finally:
                route = scope.get("route")
                template = getattr(route, "path", None)
                if template:
                    span.update_name(f"{method} {template}")
                    span.set_attribute("http.route", template)
