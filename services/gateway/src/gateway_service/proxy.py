"""Forwarding one request to the owning service and streaming its answer back."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

import httpx
import structlog
from fastapi import Request, Response
from opentelemetry import propagate
from starlette.background import BackgroundTask
from starlette.responses import StreamingResponse

from gateway_service.paths import InvalidPath, checked_path, invalid_path
from gateway_service.routing import REQUEST_DROP, RESPONSE_DROP, end_to_end
from gateway_service.security import is_identity_header
from kit.errors import Problem
from kit.internal import CLIENT_IP_HEADER, EDGE_ONLY_HEADERS
from kit.request_context import client_ip

log = structlog.get_logger("gateway.proxy")

# Replaced by the gateway's own word on the client (X-Request-Id: the middleware's id).
REPLACED_HEADERS = frozenset(
    {"x-forwarded-for", "forwarded", "x-real-ip", "x-request-id", *EDGE_ONLY_HEADERS}
)

# Called before a request is forwarded; raises a Problem (401/403) to refuse it.
type Authenticator = Callable[[Request], Awaitable[None]]
# Called when the upstream answered 403 (the gateway audits every refusal).
type OnForbidden = Callable[[Request], None]


async def read_body(request: Request, limit: int) -> bytes:
    """The whole request body, refusing more than `limit` bytes (declared or streamed)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def too_large(limit: int) -> Problem:
    return Problem(
        413,
        "PAYLOAD_TOO_LARGE",
        "Request body too large",
        detail=f"The request body exceeds {limit} bytes.",
    )


def request_id_of(request: Request) -> str | None:
    """The id the request-id middleware chose (it also echoes it on the response)."""
    value = getattr(request.state, "request_id", None)
    return str(value) if value else request.headers.get("x-request-id")


def upstream_headers(
    request: Request, internal: Mapping[str, str] | None = None
) -> list[tuple[str, str]]:
    """The client's end-to-end headers plus the client address the gateway vouches for (with
    the internal credential, kit.internal), X-Forwarded-Proto/Host, X-Request-Id, traceparent.

    What a client sent about addresses (`X-Forwarded-For`, `Forwarded`, `X-Client-Ip`) or as a
    credential (`X-Internal-Token`, `X-User-*`) never reaches a service."""
    headers = [
        (k, v)
        for k, v in end_to_end(request.headers.items(), drop=REQUEST_DROP)
        if k.lower() not in REPLACED_HEADERS and not is_identity_header(k)
    ]
    if internal:
        headers.extend(internal.items())
        if address := client_ip(request):
            headers.append((CLIENT_IP_HEADER, address))
    headers.append(("x-forwarded-proto", request.url.scheme))
    if host := request.headers.get("host"):
        headers.append(("x-forwarded-host", host))
    if request_id := request_id_of(request):
        headers.append(("x-request-id", request_id))
    # The gateway's own span, when tracing is on; else the client's traceparent passes through.
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    if carrier:
        injected = {k.lower() for k in carrier}
        headers = [(k, v) for k, v in headers if k.lower() not in injected]
        headers.extend(carrier.items())
    return headers


class Proxy:
    """One pooled client for every upstream; `forward` answers as the upstream did."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        urls: Mapping[str, str],
        *,
        body_limit: int,
        authenticate: Authenticator,
        on_forbidden: OnForbidden | None = None,
        internal: Mapping[str, str] | None = None,
    ) -> None:
        self.client = client
        # The internal credential's header: services believe the client address only with it.
        self.internal = dict(internal or {})
        self.urls = dict(urls)
        self.body_limit = body_limit
        self.authenticate = authenticate
        self.on_forbidden = on_forbidden

    def target(self, request: Request, service: str) -> httpx.URL:
        """The upstream URL: the client's raw path exactly as checked, and its query."""
        # raw_path keeps the client's percent-encoding exactly as sent. It is checked again
        # here (the middleware did it first), so no caller can forward an unchecked path.
        path: str = request.scope["path"]
        raw_path: bytes = request.scope.get("raw_path") or path.encode()
        try:
            checked_path(raw_path, path)
        except InvalidPath as exc:
            raise invalid_path(exc.reason) from exc
        base = httpx.URL(self.urls[service])
        wanted = base.raw_path.rstrip(b"/") + raw_path
        url = base.copy_with(raw_path=wanted)
        if query := request.scope.get("query_string", b""):
            url = url.copy_with(query=_ascii(query))
        # httpx resolves dot segments and re-quotes: what it would send must be what was checked.
        if url.raw_path.partition(b"?")[0] != wanted:
            raise invalid_path("The path would not reach the service as it was sent.")
        return url

    async def forward(self, request: Request, service: str) -> Response:
        """Send the request to `service`; 502/504 problems when it is down or too slow."""
        await self.authenticate(request)
        body = await read_body(request, self.body_limit)
        outgoing = self.client.build_request(
            request.method,
            self.target(request, service),
            headers=upstream_headers(request, self.internal),
            content=body,
        )
        try:
            upstream = await self.client.send(outgoing, stream=True)
        except httpx.TimeoutException as exc:
            log.warning("gateway.upstream_timeout", upstream=service, error=repr(exc))
            raise Problem(
                504,
                "UPSTREAM_TIMEOUT",
                "Upstream timed out",
                detail=f"The {service} service did not answer in time.",
                service=service,
            ) from exc
        except httpx.TransportError as exc:
            log.warning("gateway.upstream_unavailable", upstream=service, error=repr(exc))
            raise Problem(
                502,
                "UPSTREAM_UNAVAILABLE",
                "Upstream unavailable",
                detail=f"The {service} service is not reachable.",
                service=service,
            ) from exc
        if upstream.status_code == 403 and self.on_forbidden is not None:
            self.on_forbidden(request)
        response = StreamingResponse(
            _relay(upstream, service),
            status_code=upstream.status_code,
            background=BackgroundTask(upstream.aclose),
        )
        # Raw pairs keep repeated fields (Set-Cookie) and the upstream's exact Content-Length
        # (the body is relayed undecoded, so the length and Content-Encoding stay true).
        # X-Request-Id is dropped here because the gateway's middleware sets the same value.
        kept = end_to_end(upstream.headers.multi_items(), drop={*RESPONSE_DROP, "x-request-id"})
        response.raw_headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in kept]
        return response


def _ascii(raw: bytes) -> bytes:
    """`raw` with every non-ASCII byte percent-encoded (httpx takes URL parts as ASCII only)."""
    return b"".join(bytes([byte]) if byte < 0x80 else b"%%%02X" % byte for byte in raw)


async def _relay(upstream: httpx.Response, service: str) -> AsyncIterator[bytes]:
    """The upstream body as it arrives; a failure half-way can only cut the response short."""
    try:
        async for chunk in upstream.aiter_raw():
            yield chunk
    except httpx.HTTPError as exc:
        log.warning("gateway.upstream_body_failed", upstream=service, error=repr(exc))
