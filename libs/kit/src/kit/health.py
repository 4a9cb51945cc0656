"""`/healthz` (the process answers) and `/readyz` (its dependencies answer).

Readiness checks are registered at start-up (usually in the lifespan, once Mongo and the broker are
connected) with `add_readiness_check(app, "mongo", check)`. `/readyz` runs them all at once, each
with a short timeout: a check that raises, answers False or takes too long makes the service
`unavailable` (503), so a load balancer stops sending it traffic.

The same answer is the gauge `shop_ready{service}` (1 ready, 0 not), sampled when `/metrics` is
scraped: Prometheus's `up` says the process answers, this says whether it could serve.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from kit import metrics

log = structlog.get_logger("kit.health")

type ReadinessCheck = Callable[[], Awaitable[bool]]

DEFAULT_CHECK_TIMEOUT = 2.0

READY = metrics.gauge(
    "shop_ready",
    "1 when every readiness check passes (what /readyz answers), sampled when scraped.",
    ["service"],
)


def _checks(app: FastAPI) -> dict[str, tuple[ReadinessCheck, float]]:
    checks: dict[str, tuple[ReadinessCheck, float]] | None = getattr(
        app.state, "readiness_checks", None
    )
    if checks is None:
        checks = {}
        app.state.readiness_checks = checks
    return checks


def add_readiness_check(
    app: FastAPI, name: str, check: ReadinessCheck, *, timeout: float = DEFAULT_CHECK_TIMEOUT
) -> None:
    """Register (or replace) the readiness check `name`; `check()` answers True when ready."""
    _checks(app)[name] = (check, timeout)


def remove_readiness_check(app: FastAPI, name: str) -> None:
    """Forget the check `name` (e.g. when the lifespan stops)."""
    _checks(app).pop(name, None)


async def _run(name: str, check: ReadinessCheck, timeout: float) -> bool:
    try:
        return bool(await asyncio.wait_for(check(), timeout))
    except TimeoutError:
        log.warning("readiness.timeout", check=name, timeout=timeout)
    except Exception as exc:  # any failure means "not ready"
        log.warning("readiness.failed", check=name, error=repr(exc))
    return False


async def readiness(app: FastAPI) -> tuple[bool, dict[str, bool]]:
    """(all ready, {check name: result}) for the checks registered on `app`."""
    checks = dict(_checks(app))
    names = list(checks)
    results = await asyncio.gather(*(_run(n, *checks[n]) for n in names))
    outcome = dict(zip(names, results, strict=True))
    return all(results), outcome


def _service(request: Request) -> str:
    settings = getattr(request.app.state, "settings", None)
    return str(getattr(settings, "service_name", None) or request.app.title)


async def healthz(request: Request) -> dict[str, str]:
    """Liveness: the process is up and serving."""
    return {"status": "ok", "service": _service(request)}


async def readyz(request: Request) -> JSONResponse:
    """Readiness: every registered check passed within its timeout."""
    ready, checks = await readiness(request.app)
    body = {
        "status": "ready" if ready else "unavailable",
        "service": _service(request),
        "checks": checks,
    }
    return JSONResponse(body, status_code=200 if ready else 503)


def install_health_routes(app: FastAPI) -> None:
    """Add `/healthz` and `/readyz` to `app` as plain routes (so an app may replace one by path)."""
    app.add_api_route("/healthz", healthz, methods=["GET"], tags=["health"])
    app.add_api_route(
        "/readyz",
        readyz,
        methods=["GET"],
        tags=["health"],
        responses={503: {"description": "A dependency is not reachable"}},
    )


def install_readiness_metric(app: FastAPI, service: str) -> None:
    """Sample `shop_ready{service}` on each scrape from the checks `/readyz` runs."""
    gauge = READY.labels(service=service)

    async def sample() -> None:
        # Not ready until shown otherwise: a sample cut short by the scrape's timeout says 0.
        gauge.set(0)
        ready, _ = await readiness(app)
        gauge.set(1 if ready else 0)

    metrics.add_scrape_hook(app, "readiness", sample)
