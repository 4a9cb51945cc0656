"""The FastAPI factory every service uses, and `serve` for its `__main__`.

`create_app(settings, title=..., routers=..., lifespan=...)` gives a service, in this order:
logging and tracing set up for `settings.service_name`; problem+json for every error; the
request-context middleware (`X-Request-Id`, body limit, last-resort 500) inside a server span
per request (FastAPI's native telemetry, else `kit.tracing_middleware`); `/healthz`, `/readyz`
and `/metrics` (the HTTP latency histogram outside it all, see `kit.metrics`; readiness as the
`shop_ready` gauge, see `kit.health`); the JWT verifier
on `app.state.token_verifier`; the settings on `app.state.settings`; and the service's own
lifespan wrapped so start and stop are logged (and the verifier's HTTP client closed).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable, MutableMapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any

import structlog
import uvicorn
from fastapi import APIRouter, FastAPI

from kit.errors import install_problem_handlers, install_problem_openapi
from kit.health import add_readiness_check, install_health_routes, install_readiness_metric
from kit.logging import configure_logging
from kit.metrics import install_metrics
from kit.request_context import RequestContextMiddleware
from kit.settings import ServiceSettings
from kit.tracing import setup_tracing, shutdown_tracing
from kit.tracing_middleware import ServerSpanMiddleware

log = structlog.get_logger("kit.app")

type Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]

# Seconds uvicorn waits for open requests on SIGTERM before it runs the lifespan shutdown.
GRACEFUL_SHUTDOWN = 5


def _wrap_lifespan(settings: ServiceSettings, inner: Lifespan | None) -> Lifespan:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service = settings.service_name
        log.info("app.starting", service=service, env=settings.env, port=settings.port)
        try:
            # The feed starts once the service's own lifespan ran: a service that verifies its
            # own tokens (the user service) has swapped the verifier by then.
            async with AsyncExitStack() as stack:
                if inner is not None:
                    await stack.enter_async_context(inner(app))
                await stack.enter_async_context(
                    _revocations_polled(app, settings.token_versions_poll_seconds)
                )
                yield
        finally:
            verifier = getattr(app.state, "token_verifier", None)
            close = getattr(verifier, "aclose", None)
            if close is not None:
                await close()
            shutdown_tracing()
            log.info("app.stopped", service=service)

    return lifespan


# FastAPI >= 0.16x traces every request itself (a SERVER span continuing the caller's
# traceparent, named after the route template); older versions get kit's small middleware.
NATIVE_TELEMETRY = "telemetry" in inspect.signature(FastAPI.__init__).parameters
UNTRACED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def _untraced(scope: MutableMapping[str, Any]) -> bool:
    return scope.get("path") in UNTRACED_PATHS


def _telemetry_options() -> dict[str, Any]:
    if not NATIVE_TELEMETRY:
        return {}
    # Probes every few seconds would drown the traces; FastAPI's own log records (validation
    # failures with their input, exception messages) stay off: kit logs those, redacted.
    return {"telemetry": {"logs": False, "exclude": _untraced}}


def create_app(
    settings: ServiceSettings,
    *,
    title: str,
    routers: Sequence[APIRouter] = (),
    lifespan: Lifespan | None = None,
    version: str = "0.1.0",
) -> FastAPI:
    """A FastAPI app with the shop's errors, request ids, health routes, logging and tracing."""
    configure_logging(settings.service_name, settings.log_level, settings.log_format)
    setup_tracing(settings.service_name, settings.otel_exporter_otlp_endpoint)

    app = FastAPI(
        title=title,
        version=version,
        lifespan=_wrap_lifespan(settings, lifespan),
        **_telemetry_options(),
    )
    app.state.settings = settings
    app.state.service_name = settings.service_name
    app.state.readiness_checks = {}
    install_token_verifier(app, settings)
    install_problem_handlers(app)
    install_problem_openapi(app)

    # add_middleware puts each new one outside the previous: the span wraps the request context,
    # so logs of the whole request (its 500 included) carry the trace id.
    app.add_middleware(RequestContextMiddleware, max_body_bytes=settings.max_body_bytes)
    if not NATIVE_TELEMETRY:
        app.add_middleware(ServerSpanMiddleware, service=settings.service_name)
    # Outside the span and the request context: the latency of everything, 413s included.
    install_metrics(app, settings.service_name)

    install_health_routes(app)
    install_readiness_metric(app, settings.service_name)
    for router in routers:
        app.include_router(router)
    return app


def install_token_verifier(app: FastAPI, settings: ServiceSettings) -> None:
    """`app.state.token_verifier` for `settings.jwks_url`, refusing revoked tokens, and the feed
    that keeps its revocations current (`app.state.token_version_feed`, polled while the app
    runs). Tests replace the verifier with a static one (`use_static_keys`): no feed runs then."""
    from kit.auth.jwks import JwksKeySource
    from kit.auth.revocation import TokenVersionFeed, TokenVersions, token_versions_url
    from kit.auth.verify import TokenVerifier
    from kit.internal import internal_headers

    versions = TokenVersions()
    app.state.token_version_feed = TokenVersionFeed(
        settings.token_versions_url or token_versions_url(settings.jwks_url),
        versions,
        headers=internal_headers(settings),
    )
    app.state.token_verifier = TokenVerifier(
        JwksKeySource(settings.jwks_url, ttl=settings.jwks_ttl_seconds),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        revocations=versions,
        cache_size=settings.token_cache_size,
    )


# Until its first poll succeeded a process refuses every token: it retries this often, not
# every TOKEN_VERSIONS_POLL_SECONDS (a service that starts before the user service joins at once).
UNSYNCHRONISED_RETRY_SECONDS = 0.25


@asynccontextmanager
async def _revocations_polled(app: FastAPI, interval: float) -> AsyncIterator[None]:
    """Poll the token-version feed while the app runs, if its verifier still uses it.

    The first poll is awaited, so a process that starts after the user service accepts tokens
    at once. Until a poll succeeded the process refuses every token (kit.auth.revocation), so
    it is not ready either (`/readyz` 503 `token_versions`: a load balancer, the runner and the
    tests send it nothing yet) and it polls every UNSYNCHRONISED_RETRY_SECONDS meanwhile."""
    from kit.auth.revocation import TokenVersionFeed
    from kit.background import PeriodicTask

    feed: TokenVersionFeed | None = getattr(app.state, "token_version_feed", None)
    verifier = getattr(app.state, "token_verifier", None)
    if feed is None or getattr(verifier, "revocations", None) is not feed.versions:
        yield
        return

    async def synchronised() -> bool:
        return feed.versions.synchronised

    async def poll() -> None:
        while not await feed.poll() and not feed.versions.synchronised:
            await asyncio.sleep(UNSYNCHRONISED_RETRY_SECONDS)

    add_readiness_check(app, "token_versions", synchronised)
    await feed.poll()
    task = PeriodicTask("token-versions", poll, interval)
    task.start()
    try:
        yield
    finally:
        await task.stop()
        await feed.aclose()


KEEP_ALIVE_SECONDS = 30


def server_options(settings: ServiceSettings) -> dict[str, Any]:
    """uvicorn's options for a service (`serve`; tests run a `uvicorn.Config` of them)."""
    return {
        "host": settings.host,
        "port": settings.port,
        "lifespan": "on",  # a failed start-up exits the process, so a supervisor sees it
        "log_config": None,  # keep kit's logging (JSON lines), not uvicorn's own
        "access_log": bool(settings.access_log),
        # uvicorn's default ("auto") takes uvloop too, but only while an extra of uvicorn
        # happens to install it: kit depends on it, and names it, so that a process that
        # cannot load it fails to start rather than running on the slower loop unnoticed.
        "loop": "uvloop",
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN,
        # Longer than any client's keep-alive (httpx expires idle connections after 5 s, which
        # was uvicorn's default too): with equal timeouts a client could send on a connection
        # the server was closing, and the gateway answered 502 for a request never read.
        "timeout_keep_alive": KEEP_ALIVE_SECONDS,
        "proxy_headers": False,  # X-Forwarded-* are read by kit.request_context.client_ip only
        "server_header": False,
    }


def serve(app: FastAPI, settings: ServiceSettings) -> None:
    """Run `app` with uvicorn on the settings' host and port until SIGINT/SIGTERM."""
    uvicorn.run(app, **server_options(settings))
