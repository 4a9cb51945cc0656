"""Per-request context: the request id, the client's address and the audit actor.

`RequestContextMiddleware` (pure ASGI, so it sees every response, errors included):
- takes the caller's `X-Request-Id` when it looks sane (the gateway sets one), else makes one,
  puts it on `request.state.request_id`, binds it (and `X-Correlation-Id`) into structlog's
  context variables and sets it on every response;
- refuses bodies over `max_body_bytes` with 413 `PAYLOAD_TOO_LARGE`;
- renders an exception nobody handled as 500 `INTERNAL_ERROR` itself, so that even that answer
  carries the request id (Starlette's last-resort handler runs outside user middleware).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import structlog
from opentelemetry import trace
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from contracts import Actor, new_id
from kit.errors import Problem, render_unhandled

if TYPE_CHECKING:
    from kit.auth.principal import Principal

REQUEST_ID_HEADER = "X-Request-Id"
CORRELATION_ID_HEADER = "X-Correlation-Id"
_SANE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
DEVICE_MAX_LENGTH = 200
REGION_MAX_LENGTH = 64


def sane_id(value: str | None) -> str | None:
    """`value` when it is a plausible id (1-128 chars of [A-Za-z0-9._:-]), else None."""
    if value and _SANE_ID.match(value):
        return value
    return None


class RequestContextMiddleware:
    """Request id in, request id out, on every response; body size limit; last-resort 500."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int | None = None) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        request_id = sane_id(headers.get(REQUEST_ID_HEADER)) or new_id()
        correlation_id = sane_id(headers.get(CORRELATION_ID_HEADER))
        scope.setdefault("state", {})["request_id"] = request_id
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        context = {"request_id": request_id}
        if correlation_id:
            context["correlation_id"] = correlation_id
        with structlog.contextvars.bound_contextvars(**context):
            limit = self.max_body_bytes
            declared = headers.get("content-length", "")
            if limit is not None and declared.isdigit() and int(declared) > limit:
                await _too_large(limit).response()(scope, receive, send_with_id)
                return
            try:
                await self.app(scope, _limited(receive, limit), send_with_id)
            except Problem as problem:
                # Raised outside the exception middleware (by another middleware): still a problem.
                if started:
                    raise
                await problem.response()(scope, receive, send_with_id)
            except Exception as exc:
                if started:
                    raise  # the client already has a status line; nothing better to send
                trace.get_current_span().record_exception(exc)
                await render_unhandled(exc, request_id)(scope, receive, send_with_id)


def _too_large(limit: int) -> Problem:
    return Problem(
        413,
        "PAYLOAD_TOO_LARGE",
        "Request body too large",
        f"The request body exceeds {limit} bytes.",
    )


def _limited(receive: Receive, limit: int | None) -> Receive:
    if limit is None:
        return receive
    size = 0

    async def counting() -> Message:
        nonlocal size
        message = await receive()
        if message["type"] == "http.request":
            size += len(message.get("body", b""))
            if size > limit:
                # An HTTPException passes FastAPI's body reader untouched and is rendered as 413.
                raise HTTPException(413, f"The request body exceeds {limit} bytes.")
        return message

    return counting


def request_id(connection: HTTPConnection) -> str | None:
    """The id chosen by the middleware for this request."""
    value = getattr(connection.state, "request_id", None)
    return str(value) if value else None


def _networks(trusted: Iterable[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    networks = []
    for entry in trusted:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            continue
    return networks


def _is_trusted(ip: str, trusted: Sequence[str]) -> bool:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(address in network for network in _networks(trusted))


def _trusted_proxies(connection: HTTPConnection) -> Sequence[str]:
    settings = (
        getattr(connection.app.state, "settings", None) if "app" in connection.scope else None
    )
    proxies = getattr(settings, "trusted_proxies", None)
    return tuple(proxies) if proxies is not None else ("127.0.0.1", "::1")


def client_ip(
    connection: HTTPConnection, trusted_proxies: Sequence[str] | None = None
) -> str | None:
    """The client's address: `X-Forwarded-For` is believed only when it came from a trusted proxy.

    Walking the chain from the right, each hop added by a trusted proxy is skipped; the first
    address not in the trusted set is the client (a client cannot forge hops to the right of it).
    """
    peer = connection.client.host if connection.client else None
    trusted = trusted_proxies if trusted_proxies is not None else _trusted_proxies(connection)
    if peer is None or not _is_trusted(peer, trusted):
        return peer
    forwarded = connection.headers.get("x-forwarded-for")
    if not forwarded:
        return peer
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return peer  # garbage in the chain: fall back to what we saw ourselves
        if not _is_trusted(hop, trusted):
            return hop
    return hops[0] if hops else peer


def _short(value: str | None, limit: int) -> str | None:
    if not value:
        return None
    cleaned = "".join(ch for ch in value if ch.isprintable()).strip()
    return cleaned[:limit] or None


def actor_from_request(connection: HTTPConnection, principal: Principal | None = None) -> Actor:
    """The audit actor of this request: who (from the token), from where, on what device."""
    return Actor(
        user_id=principal.user_id if principal else None,
        role=principal.role if principal else "system",
        ip=client_ip(connection),
        device=_short(connection.headers.get("user-agent"), DEVICE_MAX_LENGTH),
        region=_short(connection.headers.get("x-region"), REGION_MAX_LENGTH),
    )
