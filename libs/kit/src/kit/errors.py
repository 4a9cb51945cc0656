"""RFC 9457 problem details: one error shape for every service (api.md, top).

Every error answers `application/problem+json` with `{type, title, status, detail, code, ...}`
where `code` is a stable UPPER_SNAKE string clients can switch on. Raise `Problem` anywhere in a
request; `install_problem_handlers(app)` renders it, and turns FastAPI's and Starlette's own errors
into the same shape:

- request validation → 422 `VALIDATION_ERROR` with `errors: [{field, message}]`. `field` is the
  dotted camelCase path of the offending value (`items.0.quantity`); the input itself is never
  echoed back (it may be a password).
- malformed JSON body → 422 `VALIDATION_ERROR` too, with one error on field `body` (one code for
  "your body is wrong" keeps client handling simple; api.md lists no 400).
- `HTTPException` → its status with a code from `HTTP_CODES` (404 `NOT_FOUND`, 405
  `METHOD_NOT_ALLOWED`, 401 `UNAUTHENTICATED`, 403 `FORBIDDEN`, …).
- anything else → 500 `INTERNAL_ERROR` with a generic detail and the request id; the traceback
  goes to the server log only.

A 429 always carries `Retry-After`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from http import HTTPStatus
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pymongo.errors import PyMongoError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from kit.transactions import Conflict, is_retryable

log = structlog.get_logger("kit.errors")

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_PREFIX = "urn:shop:problem:"
DEFAULT_RETRY_AFTER = 60

HTTP_CODES: dict[int, str] = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    409: "CONFLICT",
    410: "GONE",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "VALIDATION_ERROR",
    429: "RATE_LIMITED",
    500: "INTERNAL_ERROR",
    502: "UPSTREAM_UNAVAILABLE",
    503: "SERVICE_UNAVAILABLE",
    504: "UPSTREAM_TIMEOUT",
}

_GENERIC_DETAIL: dict[int, str] = {
    401: "Authentication is required.",
    403: "You are not allowed to do this.",
    404: "The requested resource was not found.",
    405: "This method is not allowed on this resource.",
    500: "An unexpected error occurred. Quote the request id when reporting it.",
}

_CODE_RE = re.compile(r"^[A-Z][A-Z0-9_]*$")


def code_for_status(status: int) -> str:
    """The default problem code of an HTTP status (`HTTP_<status>` when none is defined)."""
    return HTTP_CODES.get(status, f"HTTP_{status}")


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


class Problem(Exception):
    """An error a client should see: `Problem(409, "INVALID_STATE", "Invalid state", ...)`.

    Extra keyword arguments become extra members of the body, snake_case keys turned camelCase
    (`current_status=...` → `currentStatus`). `headers` are added to the response; for a 429,
    `retry_after` (seconds) becomes `Retry-After`.
    """

    def __init__(
        self,
        status: int,
        code: str,
        title: str,
        detail: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        retry_after: int | None = None,
        **extra: Any,
    ) -> None:
        if not _CODE_RE.match(code):
            raise ValueError(f"problem code must be UPPER_SNAKE, got {code!r}")
        super().__init__(f"{status} {code}: {detail or title}")
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        self.extra = {_camel(k): _jsonable(v) for k, v in extra.items()}
        self.headers = dict(headers or {})
        if retry_after is not None:
            self.headers["Retry-After"] = str(max(0, int(retry_after)))
        if status == 429:
            self.headers.setdefault("Retry-After", str(DEFAULT_RETRY_AFTER))

    @property
    def type(self) -> str:
        return PROBLEM_TYPE_PREFIX + self.code.lower().replace("_", "-")

    def body(self) -> dict[str, Any]:
        """The problem document (reserved members win over extras of the same name)."""
        document: dict[str, Any] = {
            "type": self.type,
            "title": self.title,
            "status": self.status,
            "detail": self.detail if self.detail is not None else self.title,
            "code": self.code,
        }
        for key, value in self.extra.items():
            document.setdefault(key, value)
        return document

    def response(self) -> JSONResponse:
        """This problem as an `application/problem+json` response."""
        return JSONResponse(
            self.body(),
            status_code=self.status,
            headers=self.headers,
            media_type=PROBLEM_MEDIA_TYPE,
        )


# Helpers for the problems every service raises.


def not_found(code: str = "NOT_FOUND", detail: str | None = None, **extra: Any) -> Problem:
    """404 with a specific code (`ORDER_NOT_FOUND`)."""
    return Problem(404, code, "Not found", detail or _GENERIC_DETAIL[404], **extra)


def unauthenticated(detail: str | None = None, **extra: Any) -> Problem:
    """401 `UNAUTHENTICATED` with `WWW-Authenticate: Bearer`."""
    return Problem(
        401,
        "UNAUTHENTICATED",
        "Unauthenticated",
        detail or _GENERIC_DETAIL[401],
        headers={"WWW-Authenticate": "Bearer"},
        **extra,
    )


def forbidden(detail: str | None = None, *, code: str = "FORBIDDEN", **extra: Any) -> Problem:
    """403 `FORBIDDEN`."""
    return Problem(403, code, "Forbidden", detail or _GENERIC_DETAIL[403], **extra)


def conflict(
    code: str, detail: str | None = None, *, title: str = "Conflict", **extra: Any
) -> Problem:
    """409 with a specific code (`EMAIL_TAKEN`, `PROFILE_INCOMPLETE` with `missing=[...]`)."""
    return Problem(409, code, title, detail, **extra)


def invalid_state(current_status: str, detail: str | None = None, **extra: Any) -> Problem:
    """409 `INVALID_STATE` with `currentStatus`: a state-changing call in the wrong state."""
    return Problem(
        409,
        "INVALID_STATE",
        "Invalid state",
        detail or f"Not allowed while the resource is {current_status}.",
        current_status=current_status,
        **extra,
    )


def unprocessable(code: str, detail: str | None = None, **extra: Any) -> Problem:
    """422 with a specific code (`EMPTY_ORDER`, `IDEMPOTENCY_KEY_REQUIRED`)."""
    return Problem(422, code, "Unprocessable request", detail, **extra)


def too_many_requests(
    retry_after: int, code: str = "RATE_LIMITED", detail: str | None = None, **extra: Any
) -> Problem:
    """429 with `Retry-After` (`RATE_LIMITED`, `TOO_MANY_ATTEMPTS`)."""
    return Problem(
        429,
        code,
        "Too many requests",
        detail or f"Try again in {retry_after} seconds.",
        retry_after=retry_after,
        **extra,
    )


def validation_problem(errors: Sequence[Mapping[str, str]], detail: str | None = None) -> Problem:
    """422 `VALIDATION_ERROR` naming each offending field."""
    return Problem(
        422,
        "VALIDATION_ERROR",
        "Validation failed",
        detail or "The request is invalid: " + ", ".join(e["field"] for e in errors) + ".",
        errors=[dict(e) for e in errors],
    )


def internal_error(request_id: str | None) -> Problem:
    """500 `INTERNAL_ERROR`: nothing about the cause, only the id to quote."""
    return Problem(
        500,
        "INTERNAL_ERROR",
        "Internal server error",
        _GENERIC_DETAIL[500],
        request_id=request_id,
    )


# Rendering FastAPI's and Starlette's errors.

_LOCATIONS = frozenset({"body", "query", "path", "header", "cookie"})


def field_path(loc: Iterable[int | str]) -> str:
    """`("body", "items", 0, "product_id")` → `items.0.productId`; a whole body is `body`."""
    parts = list(loc)
    if len(parts) > 1 and parts[0] in _LOCATIONS:
        parts = parts[1:]
    if parts and parts[0] == "body" and len(parts) == 1:
        return "body"
    return ".".join(_camel(p) if isinstance(p, str) else str(p) for p in parts) or "body"


def _message(error: Mapping[str, Any]) -> str:
    kind = error.get("type", "")
    if kind == "json_invalid":
        return "Malformed JSON"
    if kind == "extra_forbidden":
        return "Unknown field"
    if kind == "missing":
        return "Field required"
    # pydantic's messages describe the expectation, not the input ("Input should be a valid
    # string"); they never contain the submitted value.
    return str(error.get("msg", "Invalid value"))


def validation_errors(exc: RequestValidationError) -> list[dict[str, str]]:
    """`[{field, message}]` from FastAPI's error list, without the submitted values."""
    out: list[dict[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for error in exc.errors():
        loc = error.get("loc", ())
        if error.get("type") == "json_invalid":
            loc = ("body",)
        item = (field_path(loc), _message(error))
        if item not in seen:
            seen.add(item)
            out.append({"field": item[0], "message": item[1]})
    return out


def _request_id(request: Request) -> str | None:
    value = getattr(request.state, "request_id", None)
    return str(value) if value else None


async def _problem_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return exc.response()


async def _validation_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = validation_errors(exc)
    log.info("request.invalid", fields=[e["field"] for e in errors], path=request.url.path)
    return validation_problem(errors).response()


# FastAPI's answer to a body it cannot even decode (not UTF-8, say): api.md has no 400, and
# "your body is wrong" is one code, the 422 of malformed JSON.
_UNPARSABLE_BODY = "There was an error parsing the body"


async def _http_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    if status == 400 and exc.detail == _UNPARSABLE_BODY:
        return validation_problem([{"field": "body", "message": "Malformed JSON"}]).response()
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail != title else None
    headers = dict(exc.headers or {})
    if status == 401:
        headers.setdefault("WWW-Authenticate", "Bearer")
    problem = Problem(
        status,
        code_for_status(status),
        title,
        detail or _GENERIC_DETAIL.get(status, title),
        headers=headers,
    )
    return problem.response()


async def _unhandled_handler(request: Request, exc: Exception) -> Response:
    if isinstance(exc, Problem):  # raised by a middleware outside the exception middleware
        return exc.response()
    request_id = _request_id(request)
    log.error(
        "request.failed",
        path=request.url.path,
        method=request.method,
        request_id=request_id,
        exc_info=exc,
    )
    return internal_error(request_id).response()


def render_unhandled(exc: BaseException, request_id: str | None) -> Response:
    """The 500 problem for an exception nobody handled; logs it with its traceback."""
    log.error("request.failed", request_id=request_id, exc_info=exc)
    return internal_error(request_id).response()


# A retryable failure that outlasted the transaction's retries: the client should try again.
RETRY_AFTER_SECONDS = 1


async def _retryable_handler(request: Request, exc: Exception) -> Response:
    if isinstance(exc, Conflict):
        log.info("request.conflict", path=request.url.path, error=repr(exc))
        return conflict(
            "CONCURRENT_UPDATE", "The resource changed meanwhile; try again."
        ).response()
    if not is_retryable(exc):
        return render_unhandled(exc, _request_id(request))
    log.warning("request.unavailable", path=request.url.path, error=repr(exc))
    return Problem(
        503,
        "SERVICE_UNAVAILABLE",
        "Service unavailable",
        "The database is busy or unreachable; try again shortly.",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    ).response()


def install_problem_handlers(app: FastAPI) -> None:
    """Render every error of `app` as problem+json."""
    app.add_exception_handler(Problem, _problem_handler)
    # Write conflicts and an unreachable database are of the moment: 503 with Retry-After (or
    # 409 for an application-detected race), never a 500.
    app.add_exception_handler(PyMongoError, _retryable_handler)
    app.add_exception_handler(Conflict, _retryable_handler)
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(StarletteHTTPException, _http_handler)
    # Reached only for exceptions raised outside the request-context middleware (which renders
    # the 500 itself so that the response still carries X-Request-Id).
    app.add_exception_handler(Exception, _unhandled_handler)


# For `responses=` on routes: documents the problem shape in OpenAPI.
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Problem",
    "required": ["type", "title", "status", "code"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string", "description": "Stable UPPER_SNAKE error code"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
    "additionalProperties": True,
}


PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


def problem_response(description: str) -> dict[str, Any]:
    """One `responses=` entry documenting a problem+json answer (the `Problem` component)."""
    return {
        "description": description,
        "content": {PROBLEM_MEDIA_TYPE: {"schema": PROBLEM_REF}},
    }


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: problem_response("UNAUTHENTICATED: missing or invalid bearer token"),
    403: problem_response("FORBIDDEN: the caller's role may not do this"),
    404: problem_response("NOT_FOUND or a specific *_NOT_FOUND"),
    409: problem_response("A conflict, e.g. INVALID_STATE with currentStatus"),
    422: problem_response("VALIDATION_ERROR with the offending fields, or a specific code"),
    429: problem_response("RATE_LIMITED / TOO_MANY_ATTEMPTS, with Retry-After"),
}


def install_problem_openapi(app: FastAPI) -> None:
    """Make `app`'s OpenAPI document say what the handlers do.

    Adds the `Problem` component, and replaces FastAPI's default 422 (`HTTPValidationError`,
    `application/json`) with the `VALIDATION_ERROR` problem that is really sent.
    """

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        document = FastAPI.openapi(app)
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        schemas["Problem"] = PROBLEM_SCHEMA
        for operations in document.get("paths", {}).values():
            for operation in operations.values():
                responses = operation.get("responses") if isinstance(operation, dict) else None
                if not responses or "422" not in responses:
                    continue
                content = responses["422"].get("content", {})
                schema = content.get("application/json", {}).get("schema", {})
                if schema.get("$ref", "").endswith("/HTTPValidationError"):
                    responses["422"] = problem_response("VALIDATION_ERROR: the offending fields")
        text = json.dumps(document)
        for name in ("HTTPValidationError", "ValidationError"):
            if f"#/components/schemas/{name}" not in text:
                schemas.pop(name, None)
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]
