"""Pure retry rules: attempt counting, retry and dead-letter headers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

ATTEMPT = "x-attempt"
LAST_ERROR = "x-last-error"
ORIGINAL_ROUTING_KEY = "x-original-routing-key"
ERROR = "x-error"
ERROR_TYPE = "x-error-type"
ATTEMPTS = "x-attempts"
FAILED_AT = "x-failed-at"
SERVICE = "x-service"
HANDLER = "x-handler"
REDRIVEN_AT = "x-redriven-at"

# Headers the broker adds on dead-lettering and redelivery: dropped from our copies so that they
# do not grow with every retry (the attempt count lives in `x-attempt`).
_BROKER_HEADERS = ("x-death", "x-first-death-", "x-last-death-", "x-delivery-count")
_DEAD_LETTER_HEADERS = (ERROR, ERROR_TYPE, ATTEMPTS, FAILED_AT, SERVICE, HANDLER, LAST_ERROR)


def attempt_of(headers: Mapping[str, Any] | None) -> int:
    """The delivery attempt a message is on: 1 unless a retry copy says otherwise."""
    value = (headers or {}).get(ATTEMPT, 1)
    try:
        return max(1, int(value))
    except (TypeError, ValueError):
        return 1


def describe(exc: BaseException, limit: int) -> str:
    """`KeyError: 'x'`, cut to `limit` characters so headers stay small."""
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def carried_headers(headers: Mapping[str, Any] | None) -> dict[str, Any]:
    """The headers a copy keeps (traceparent, ours), minus the broker's bookkeeping."""
    return {k: v for k, v in (headers or {}).items() if not k.startswith(_BROKER_HEADERS)}


@dataclass(frozen=True, slots=True)
class Failure:
    """What went wrong with one delivery."""

    error: BaseException
    attempt: int
    routing_key: str
    handler: str | None
    service: str


def retry_headers(
    headers: Mapping[str, Any] | None, failure: Failure, limit: int
) -> dict[str, Any]:
    """Headers of the copy sent to the delay queue: next attempt number and the last error."""
    out = carried_headers(headers)
    out.setdefault(ORIGINAL_ROUTING_KEY, failure.routing_key)
    out[ATTEMPT] = failure.attempt + 1
    out[LAST_ERROR] = describe(failure.error, limit)
    return out


def dead_letter_headers(
    headers: Mapping[str, Any] | None, failure: Failure, limit: int, now: datetime | None = None
) -> dict[str, Any]:
    """Headers of the copy sent to the DLQ: the error, the attempts, where and when it failed."""
    out = carried_headers(headers)
    out.setdefault(ORIGINAL_ROUTING_KEY, failure.routing_key)
    out.pop(LAST_ERROR, None)
    out.update(
        {
            ERROR: describe(failure.error, limit),
            ERROR_TYPE: type(failure.error).__name__,
            ATTEMPTS: failure.attempt,
            FAILED_AT: (now or datetime.now(UTC)).isoformat(),
            SERVICE: failure.service,
        }
    )
    if failure.handler:
        out[HANDLER] = failure.handler
    return out


def redrive_headers(
    headers: Mapping[str, Any] | None, now: datetime | None = None
) -> dict[str, Any]:
    """Headers of a redriven message: a fresh attempt count, the error kept as history."""
    out = carried_headers(headers)
    previous = out.get(ERROR)
    for key in _DEAD_LETTER_HEADERS:
        out.pop(key, None)
    out[ATTEMPT] = 1
    out[REDRIVEN_AT] = (now or datetime.now(UTC)).isoformat()
    if previous is not None:
        out["x-redriven-error"] = previous
    return out
