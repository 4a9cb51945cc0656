"""The gateway app: kit's factory, the proxy, the system's readiness and the merged OpenAPI."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import structlog
from fastapi import FastAPI, Request
from starlette.middleware import Middleware

from gateway_service.api import proxy, system
from gateway_service.audit import DeniedAudit
from gateway_service.auth import guard, upstream_forbidden
from gateway_service.dead_letters import DeadLetterOps
from gateway_service.docs import router as docs_router
from gateway_service.openapi import MergedOpenAPI
from gateway_service.ops import router as ops
from gateway_service.paths import PathCheckMiddleware
from gateway_service.proxy import Proxy
from gateway_service.security import SecurityHeadersMiddleware
from gateway_service.settings import GatewaySettings
from gateway_service.web import web_router
from kit.app import Lifespan
from kit.app import create_app as create_kit_app
from kit.auth import DeniedHook, Principal, set_denied_hook
from kit.internal import internal_headers
from kit.tracing_clients import TracingTransport

# kit's factory serves FastAPI's own document and docs, and a /readyz about this process only;
# the gateway answers these itself (the merged document, the whole system's readiness).
REPLACED_PATHS = frozenset({"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc", "/readyz"})

log = structlog.get_logger("gateway")


def http_client(settings: GatewaySettings) -> httpx.AsyncClient:
    """The one pooled client every upstream call goes through (a CLIENT span per call)."""
    pool = httpx.AsyncHTTPTransport(
        limits=httpx.Limits(
            max_connections=settings.max_connections,
            max_keepalive_connections=settings.max_keepalive_connections,
        )
    )
    return httpx.AsyncClient(
        transport=TracingTransport(pool),
        timeout=httpx.Timeout(
            settings.read_timeout, connect=settings.connect_timeout, pool=settings.connect_timeout
        ),
        follow_redirects=False,
    )


def _denied_hook(audit: DeniedAudit) -> DeniedHook:
    async def hook(request: Request, principal: Principal, roles: tuple[str, ...]) -> None:
        audit.denied(request, principal, roles)

    return hook


def lifespan(settings: GatewaySettings) -> Lifespan:
    """Open the pooled upstream client with the app, close it when the app stops."""

    @asynccontextmanager
    async def run(app: FastAPI) -> AsyncIterator[None]:
        async with http_client(settings) as client:
            app.state.http = client
            app.state.audit = audit = DeniedAudit(settings)
            app.state.dead_letters = DeadLetterOps(settings, audit)
            # require_roles' own refusals are audited like the edge's (see ops.py).
            set_denied_hook(app, _denied_hook(audit))
            app.state.proxy = Proxy(
                client,
                settings.service_urls(),
                body_limit=settings.max_body_bytes,
                authenticate=guard,
                on_forbidden=upstream_forbidden,
                internal=internal_headers(settings),
            )
            app.state.openapi = MergedOpenAPI(
                client,
                settings.service_urls(),
                ttl=settings.openapi_cache_seconds,
                timeout=settings.openapi_fetch_timeout,
            )
            try:
                yield
            finally:
                await audit.close()

    return run


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    """The gateway's FastAPI app (the upstream client opens with the lifespan)."""
    settings = settings or GatewaySettings()
    # The gateway's own `ops` routes go before `proxy`, whose catch-all answers the rest.
    app = create_kit_app(settings, title="shop", routers=[ops, proxy], lifespan=lifespan(settings))
    app.router.routes[:] = [
        r for r in app.router.routes if getattr(r, "path", None) not in REPLACED_PATHS
    ]
    app.include_router(system)
    app.include_router(docs_router)
    web = settings.web_dir is not None and (settings.web_dir / "index.html").is_file()
    if web:
        assert settings.web_dir is not None
        # Last: its catch-all must not shadow /healthz, /readyz, /docs or the API.
        app.include_router(web_router(settings.web_dir))
    elif settings.web_dir is not None:
        log.warning("gateway.web_not_built", web_dir=str(settings.web_dir))
    # Innermost of the middleware, so the first thing inside kit's request context: every
    # route (ops, the proxy, the docs, the web catch-all) sees only a checked path, and the
    # 400 still carries X-Request-Id and the security headers (add_middleware would put it
    # outside them).
    app.user_middleware.append(Middleware(PathCheckMiddleware))
    app.add_middleware(SecurityHeadersMiddleware, hsts=settings.hsts, web=web)
    # httpx logs every upstream call at INFO: each one is already in the gateway's access log.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return app
