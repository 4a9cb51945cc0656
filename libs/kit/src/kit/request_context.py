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
from kit.internal import CLIENT_IP_HEADER, is_internal_caller

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


def _ip(value: str | None) -> str | None:
    """`value` as a normalised IP address, None when it is not one."""
    try:
        return str(ipaddress.ip_address((value or "").strip()))
    except ValueError:
        return None


def _trusted_proxies(connection: HTTPConnection) -> Sequence[str]:
    # Only the gateway's settings have any (GATEWAY_TRUSTED_PROXIES): services believe no
    # forwarding header at all, only the address the gateway vouches for.
    settings = (
        getattr(connection.app.state, "settings", None) if "app" in connection.scope else None
    )
    return tuple(getattr(settings, "trusted_proxies", ()))


def _forwarded_for(connection: HTTPConnection) -> str | None:
    """The address the nearest proxy appended: the last `Forwarded: for=` (RFC 7239), else the
    last `X-Forwarded-For` entry. Anything to the left of it was written by whoever sent it."""
    forwarded = connection.headers.get("forwarded")
    if forwarded:
        last = forwarded.split(",")[-1]
        for pair in last.split(";"):
            name, _, value = pair.strip().partition("=")
            if name.lower() == "for":
                host = value.strip().strip('"')
                if host.startswith("["):  # "[2001:db8::17]:4711"
                    host = host[1 : host.find("]")]
                elif host.count(":") == 1:  # "192.0.2.60:4711"
                    host = host.partition(":")[0]
                return _ip(host)
        return None
    chain = connection.headers.get("x-forwarded-for")
    return _ip(chain.split(",")[-1]) if chain else None


def client_ip(
    connection: HTTPConnection, trusted_proxies: Sequence[str] | None = None
) -> str | None:
    """The client's address (api.md, "Edge rules → Client address"):

    - a caller holding the internal credential (the gateway, kit.internal): the address it
      vouches for in `X-Client-Ip`;
    - a peer in `trusted_proxies` (the gateway's GATEWAY_TRUSTED_PROXIES, empty by default): the
      address that proxy appended to `Forwarded` / `X-Forwarded-For`;
    - anyone else: the TCP peer, whatever headers it sent.
    """
    peer = connection.client.host if connection.client else None
    if is_internal_caller(connection):
        return _ip(connection.headers.get(CLIENT_IP_HEADER)) or peer
    trusted = trusted_proxies if trusted_proxies is not None else _trusted_proxies(connection)
    if peer is None or not trusted or not _is_trusted(peer, trusted):
        return peer
    return _forwarded_for(connection) or peer


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
