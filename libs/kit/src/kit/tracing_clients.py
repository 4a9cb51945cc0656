"""Client spans for what a request calls: MongoDB commands and outgoing HTTP.

- `MongoCommandTracer`: a PyMongo command listener (`connect()` registers it while spans are
  exported) that opens a CLIENT span per command, child of whatever span is current when the
  command is sent, and closes it when the server answers. Name and attributes are OpenTelemetry's
  database conventions for MongoDB (`find users`; `db.system.name`, `db.namespace`,
  `db.collection.name`, `db.operation.name`, `server.address`/`server.port`; `error.type` and
  `db.response.status_code` when the server refuses). Command documents are not recorded (they
  hold user data).
- `TracingTransport`: the contrib httpx instrumentation's transport wrapper (a CLIENT span per
  request, `traceparent` injected), set to the stable HTTP conventions.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import httpx
from opentelemetry import trace
from opentelemetry.instrumentation._semconv import (
    _OpenTelemetrySemanticConventionStability,
    _OpenTelemetryStabilitySignalType,
    _StabilityMode,
)
from opentelemetry.instrumentation.httpx import AsyncOpenTelemetryTransport
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from pymongo import monitoring

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
        span = trace.get_tracer(TRACER).start_span(
            command_span_name(event),
            kind=SpanKind.CLIENT,
            attributes=command_attributes(event),
        )
        with self._lock:
            self._spans[self._key(event)] = span

    def _finish(self, event: CommandEvent, failure: Mapping[str, Any] | None) -> None:
        with self._lock:
            span = self._spans.pop(self._key(event), None)
        if span is None:
            return
        if failure is not None:
            code = failure.get("code")
            name = str(failure.get("codeName") or code or "command failed")
            if code is not None:
                span.set_attribute("db.response.status_code", str(code))
            span.set_attribute("error.type", name)
            span.set_status(Status(StatusCode.ERROR, name))
        span.end()

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        # A refused write (a duplicate key, say) answers ok with the error in `writeErrors`.
        write_errors = event.reply.get("writeErrors")
        self._finish(event, write_errors[0] if write_errors else None)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self._finish(event, event.failure if isinstance(event.failure, Mapping) else {})


def command_collection(event: monitoring.CommandStartedEvent) -> str | None:
    """The collection a command works on: the value of its first key (`{"find": "users"}`), or
    `collection` for a cursor's next batch (`{"getMore": <id>, "collection": "users"}`)."""
    target = event.command.get(event.command_name)
    if isinstance(target, str):
        return target
    collection = event.command.get("collection")
    return collection if isinstance(collection, str) else None


def command_span_name(event: monitoring.CommandStartedEvent) -> str:
    """`find users`, or `commitTransaction admin` for a command on no collection: the database
    conventions' `{db.operation.name} {target}`."""
    return f"{event.command_name} {command_collection(event) or event.database_name}"


def command_attributes(event: monitoring.CommandStartedEvent) -> dict[str, str | int]:
    """The database conventions' attributes of one command (never the command document: it
    holds user data)."""
    host, port = event.connection_id
    collection = command_collection(event)
    return {
        "db.system.name": "mongodb",
        "db.namespace": event.database_name,
        "db.operation.name": event.command_name,
        **({"db.collection.name": collection} if collection else {}),
        "server.address": host,
        **({"server.port": port} if port is not None else {}),  # none over a unix socket
    }


def prefer_stable_http_conventions() -> None:
    """Have the contrib HTTP instrumentation emit the stable HTTP conventions
    (`http.request.method`, `url.full`, `http.response.status_code`, as our server spans do)
    rather than its default pre-1.21 names (`http.method`, `http.url`), unless the operator chose
    with `OTEL_SEMCONV_STABILITY_OPT_IN` (`http/dup` for both, say). That variable is the only
    public switch, and kit writes no environment (kit.settings is its one reader), so this sets
    the mode the library read from it; `test_outgoing_http_is_a_client_span_carrying_traceparent`
    fails if a release moves it."""
    stability = _OpenTelemetrySemanticConventionStability
    stability._initialize()  # type: ignore[no-untyped-call]  # (reads the variable once)
    modes = stability._OTEL_SEMCONV_STABILITY_SIGNAL_MAPPING
    if modes.get(_OpenTelemetryStabilitySignalType.HTTP) is _StabilityMode.DEFAULT:
        modes[_OpenTelemetryStabilitySignalType.HTTP] = _StabilityMode.HTTP


class TracingTransport(AsyncOpenTelemetryTransport):
    """An httpx transport (the pooled default when none is given) traced by OpenTelemetry's
    contrib instrumentation: a CLIENT span per request, its `traceparent` injected so that the
    callee's server span joins the same trace."""

    def __init__(self, inner: httpx.AsyncBaseTransport | None = None) -> None:
        prefer_stable_http_conventions()
        super().__init__(inner if inner is not None else httpx.AsyncHTTPTransport())
