"""Log lines: JSON with service, trace and request ids; secrets never written."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest
import structlog
from opentelemetry import trace

from kit.logging import configure_logging
from kit.tracing import setup_tracing

pytestmark = pytest.mark.unit


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


@pytest.fixture
def output() -> io.StringIO:
    stream = io.StringIO()
    configure_logging("order", "INFO", "json", stream=stream)
    return stream


def test_lines_are_json_with_service_level_and_context(output: io.StringIO) -> None:
    log = structlog.get_logger("order.handlers")
    with structlog.contextvars.bound_contextvars(request_id="r-1", correlation_id="c-1"):
        log.info("order.placed", order_id="o-1")
    (line,) = lines(output)
    assert line["event"] == "order.placed"
    assert line["service"] == "order"
    assert line["level"] == "info"
    assert line["order_id"] == "o-1"
    assert (line["request_id"], line["correlation_id"]) == ("r-1", "c-1")
    assert line["timestamp"].endswith("Z")


def test_lines_carry_the_current_trace_and_span(output: io.StringIO) -> None:
    setup_tracing("order", None)
    with trace.get_tracer("test").start_as_current_span("work") as span:
        structlog.get_logger().info("inside")
        context = span.get_span_context()
    (line,) = lines(output)
    assert line["trace_id"] == format(context.trace_id, "032x")
    assert line["span_id"] == format(context.span_id, "016x")


def test_secrets_are_redacted(output: io.StringIO) -> None:
    jwt_like = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1MSJ9.c2lnbmF0dXJl"
    structlog.get_logger().info(
        "user.login",
        password="hunter2-password",
        refresh_token="rt-secret-1",
        headers={"Authorization": f"Bearer {jwt_like}", "Accept": "application/json"},
        body={"user": {"cardNumber": "4242424242424242", "name": "Ann"}},
        raw_headers=[("authorization", "Basic dXNlcjpwYXNz")],
        note=f"retrying with Bearer {jwt_like}",
        client_secret="cs-secret-2",
    )
    text = output.getvalue()
    for secret in (
        "hunter2-password",
        "rt-secret-1",
        jwt_like,
        "4242424242424242",
        "dXNlcjpwYXNz",
        "cs-secret-2",
    ):
        assert secret not in text
    (line,) = lines(output)
    assert line["password"] == "[REDACTED]"
    assert line["headers"]["Accept"] == "application/json"
    assert line["headers"]["Authorization"] == "[REDACTED]"
    assert line["body"]["user"]["name"] == "Ann"
    assert line["note"].startswith("retrying with Bearer [REDACTED]")


def test_stdlib_loggers_go_through_the_same_pipeline(output: io.StringIO) -> None:
    logging.getLogger("uvicorn.error").warning("client sent Authorization: Bearer abc.def.ghi")
    (line,) = lines(output)
    assert line["service"] == "order"
    assert line["level"] == "warning"
    assert "abc.def.ghi" not in output.getvalue()


def test_exceptions_are_logged_with_their_traceback(output: io.StringIO) -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        structlog.get_logger().exception("failed")
    (line,) = lines(output)
    assert "ValueError: boom" in line["exception"]


def test_level_filters(output: io.StringIO) -> None:
    configure_logging("order", "WARNING", "json", stream=output)
    structlog.get_logger().info("quiet")
    structlog.get_logger().warning("loud")
    assert [line["event"] for line in lines(output)] == ["loud"]
