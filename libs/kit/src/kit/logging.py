"""Structured logs: one JSON object per line on stdout (architecture.md, "Observability").

Every line carries `service`, the level, an ISO-8601 UTC timestamp, the current OpenTelemetry
`trace_id`/`span_id` and whatever is bound in structlog's context variables (`request_id`,
`correlation_id`, `event_id`…). The standard library's loggers (uvicorn, pymongo, aio-pika) go
through the same pipeline, so their lines look the same.

Secrets never reach the output: values under keys that look like a password, token, authorization
header, secret, cookie or card are replaced by `[REDACTED]`, at any depth, and bearer tokens or
JWTs inside free text are masked.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog
from opentelemetry import trace
from structlog.typing import EventDict, Processor, WrappedLogger

REDACTED = "[REDACTED]"
_SENSITIVE_KEY = re.compile(
    r"pass(word|wd|phrase)?|token|authorization|secret|cookie|card|api[_-]?key|private[_-]?key|cvv",
    re.IGNORECASE,
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
# Keys structlog itself uses; never redacted even if a name matched.
_STRUCTURAL = frozenset({"event", "level", "timestamp", "logger", "service", "exception"})
_MAX_DEPTH = 6


def _mask_text(text: str) -> str:
    return _JWT.sub(REDACTED, _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text))


def redact(value: Any, depth: int = 0) -> Any:
    """`value` with secrets masked: sensitive keys at any depth, bearer tokens and JWTs in text."""
    if depth > _MAX_DEPTH:
        return value
    if isinstance(value, str):
        return _mask_text(value)
    if isinstance(value, MutableMapping | dict):
        return {
            k: REDACTED if isinstance(k, str) and _SENSITIVE_KEY.search(k) else redact(v, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        # Header lists: [("authorization", "Bearer …")] pairs keep their name, lose the value.
        items = []
        for item in value:
            if (
                isinstance(item, tuple)
                and len(item) == 2
                and isinstance(item[0], str | bytes)
                and _SENSITIVE_KEY.search(
                    item[0].decode("latin-1") if isinstance(item[0], bytes) else item[0]
                )
            ):
                items.append((item[0], REDACTED))
            else:
                items.append(redact(item, depth + 1))
        return items if isinstance(value, list) else tuple(items)
    return value


def redact_secrets(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """structlog processor: mask secrets in every field of the event."""
    for key in list(event_dict):
        if key in _STRUCTURAL:
            if isinstance(event_dict[key], str):
                event_dict[key] = _mask_text(event_dict[key])
            continue
        if _SENSITIVE_KEY.search(key):
            event_dict[key] = REDACTED
        else:
            event_dict[key] = redact(event_dict[key])
    return event_dict


def add_trace_ids(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """structlog processor: the current span's `trace_id` and `span_id`, when there is one."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict.setdefault("trace_id", format(context.trace_id, "032x"))
        event_dict.setdefault("span_id", format(context.span_id, "016x"))
    return event_dict


def drop_color_message(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """uvicorn adds an ANSI-coloured copy of each message as an extra; JSON has no use for it."""
    event_dict.pop("color_message", None)
    return event_dict


def _add_service(service: str) -> Processor:
    def add_service(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
        event_dict.setdefault("service", service)
        return event_dict

    return add_service


def configure_logging(
    service: str,
    level: str | int = "INFO",
    fmt: str = "json",
    *,
    stream: TextIO | None = None,
) -> None:
    """Send structlog and stdlib logging to `stream` (stdout) as JSON lines (or console text).

    Safe to call again (tests, several apps in one process): the last call wins.
    """
    numeric = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    if not isinstance(numeric, int):
        numeric = logging.INFO
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_service(service),
        add_trace_ids,
        structlog.stdlib.ExtraAdder(),
        drop_color_message,
    ]
    renderer: Processor = (
        structlog.dev.ConsoleRenderer(colors=False)
        if fmt == "console"
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    final: list[Processor] = [structlog.stdlib.ProcessorFormatter.remove_processors_meta]
    if fmt != "console":
        final.append(structlog.processors.format_exc_info)
    final += [redact_secrets, renderer]
    formatter = structlog.stdlib.ProcessorFormatter(foreign_pre_chain=shared, processors=final)
    handler = logging.StreamHandler(stream if stream is not None else sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_kit_handler", False):
            root.removeHandler(old)
    handler._kit_handler = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(numeric)
    # uvicorn's loggers keep their own handlers unless told otherwise: route them to ours.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "fastapi"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    # httpx logs every outgoing request at INFO (URLs may carry query secrets): warnings only.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(max(numeric, logging.WARNING))
