"""Prometheus metrics: `/metrics` on every service, HTTP latency, and the API services add to.

Every app built by `kit.app.create_app` gets, from `install_metrics(app)`:

- `GET /metrics` in the Prometheus text format (not in the OpenAPI document; each process
  serves its own, the gateway proxies nobody's);
- `shop_http_request_duration_seconds{service,method,route,status}`, a histogram of every request
  but `/metrics` itself, labelled with the route *template* (`/api/v1/orders/{order_id}`), never
  the raw path, so that ids cannot multiply the series (an unmatched path is `route="unmatched"`).

A service or library adds its own metrics with the idempotent constructors below (the same name
twice gives the same object, so module reloads and several apps in one test process are fine),
always with a `service` label first:

    from kit import metrics

    ORDERS = metrics.gauge("shop_orders_by_status", "Orders per status.", ["service", "status"])
    STEP = metrics.histogram(
        "shop_saga_step_duration_seconds",
        "Time from the order's placement to each saga step.",
        ["service", "step"],
    )
    STEP.labels(service="order", step="confirmed").observe(seconds)

Values that are cheap to read but not worth keeping up to date continuously (a queue's depth, the
age of the oldest outbox row) are sampled when Prometheus scrapes: register an async hook with
`add_scrape_hook(app, name, hook)`; `/metrics` runs every hook (each bounded by a timeout, a
failing one is logged and skipped) before it renders. Hooks only read: a scrape never writes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import structlog
from fastapi import FastAPI, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "CONTENT_TYPE_LATEST",
    "HTTP_REQUEST_DURATION",
    "LATENCY_BUCKETS",
    "METRICS_PATH",
    "MetricsMiddleware",
    "ScrapeHook",
    "add_scrape_hook",
    "counter",
    "gauge",
    "histogram",
    "install_metrics",
    "label_names",
    "remove_scrape_hook",
    "render",
]

log = structlog.get_logger("kit.metrics")

METRICS_PATH = "/metrics"
# Seconds; from a cached read (a few ms) to the gateway's read timeout (15 s).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0)
SCRAPE_HOOK_TIMEOUT = 2.0

type ScrapeHook = Callable[[], Awaitable[None]]

_metrics: dict[str, Any] = {}
_label_names: dict[str, tuple[str, ...]] = {}


def _get_or_create[M](
    kind: type[M], name: str, labelnames: Sequence[str], factory: Callable[[], M]
) -> M:
    existing = _metrics.get(name)
    if existing is None:
        existing = factory()
        _metrics[name] = existing
        _label_names[name] = tuple(labelnames)
    if not isinstance(existing, kind):
        raise ValueError(f"metric {name} already exists as a {type(existing).__name__}")
    return existing


def counter(name: str, documentation: str, labelnames: Sequence[str] = ()) -> Counter:
    """The counter `name` (created once, in the default registry). Name it `*_total`."""
    base = name.removesuffix("_total")  # prometheus-client appends `_total` itself
    return _get_or_create(
        Counter, name, labelnames, lambda: Counter(base, documentation, labelnames)
    )


def gauge(name: str, documentation: str, labelnames: Sequence[str] = ()) -> Gauge:
    """The gauge `name` (created once, in the default registry)."""
    return _get_or_create(Gauge, name, labelnames, lambda: Gauge(name, documentation, labelnames))


def histogram(
    name: str,
    documentation: str,
    labelnames: Sequence[str] = (),
    *,
    buckets: Sequence[float] = LATENCY_BUCKETS,
) -> Histogram:
    """The histogram `name` (created once, in the default registry). Name it `*_seconds`."""
    return _get_or_create(
        Histogram,
        name,
        labelnames,
        lambda: Histogram(name, documentation, labelnames, buckets=tuple(buckets)),
    )


def label_names() -> dict[str, tuple[str, ...]]:
    """Every metric made through these constructors (by the name it was given) and its label
    names: what a dashboard's query may select on (tests/unit/test_observability.py)."""
    return dict(_label_names)


HTTP_REQUEST_DURATION = histogram(
    "shop_http_request_duration_seconds",
    "HTTP requests served, by route template and status code.",
    ["service", "method", "route", "status"],
)


def _route_template(scope: Scope) -> str:
    route = scope.get("route")  # set by FastAPI's router on the scope it was handed
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"


class MetricsMiddleware:
    """Times each HTTP request into `shop_http_request_duration_seconds` (pure ASGI)."""

    def __init__(self, app: ASGIApp, *, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") == METRICS_PATH:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # an exception that escapes every handler ends as a 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            HTTP_REQUEST_DURATION.labels(
                service=self.service,
                method=scope.get("method", ""),
                route=_route_template(scope),
                status=str(status),
            ).observe(time.perf_counter() - started)


def _hooks(app: FastAPI) -> dict[str, ScrapeHook]:
    hooks: dict[str, ScrapeHook] | None = getattr(app.state, "metrics_hooks", None)
    if hooks is None:
        hooks = {}
        app.state.metrics_hooks = hooks
    return hooks


def add_scrape_hook(app: FastAPI, name: str, hook: ScrapeHook) -> None:
    """Run `hook()` before each `/metrics` answer (it sets gauges from a cheap read)."""
    _hooks(app)[name] = hook


def remove_scrape_hook(app: FastAPI, name: str) -> None:
    """Forget the hook `name` (when what it reads stops)."""
    _hooks(app).pop(name, None)


async def _run_hook(name: str, hook: ScrapeHook) -> None:
    try:
        await asyncio.wait_for(hook(), SCRAPE_HOOK_TIMEOUT)
    except Exception as exc:  # a broken sampler must not break the scrape
        log.warning("metrics.hook_failed", hook=name, error=repr(exc))


async def render(app: FastAPI, registry: CollectorRegistry = REGISTRY) -> bytes:
    """Run the app's scrape hooks, then the registry in the Prometheus text format."""
    hooks = dict(_hooks(app))
    await asyncio.gather(*(_run_hook(name, hook) for name, hook in hooks.items()))
    return generate_latest(registry)


async def metrics_endpoint(request: Request) -> Response:
    """Prometheus scrape: every metric of this process."""
    return Response(await render(request.app), media_type=CONTENT_TYPE_LATEST)


def install_metrics(app: FastAPI, service: str) -> None:
    """`GET /metrics` and the HTTP latency middleware (call before other middleware is added)."""
    _hooks(app)
    app.add_api_route(METRICS_PATH, metrics_endpoint, methods=["GET"], include_in_schema=False)
    app.add_middleware(MetricsMiddleware, service=service)
