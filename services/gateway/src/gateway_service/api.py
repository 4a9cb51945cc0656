"""The gateway's own routes: the API proxy, `/readyz` and the merged OpenAPI (its docs page:
docs.py)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from gateway_service.openapi import MergedOpenAPI
from gateway_service.proxy import Proxy
from gateway_service.readiness import system_status
from gateway_service.routing import GATEWAY_AREAS, area_of, service_for
from kit.errors import Problem

PROXY_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]

system = APIRouter(tags=["health"])
proxy = APIRouter(include_in_schema=False)


@system.get("/readyz", responses={503: {"description": "A service is not ready"}})
async def readyz(request: Request) -> JSONResponse:
    """200 when every service's own /readyz answers 200 in time, else 503; each one's status."""
    state = request.app.state
    ready, services = await system_status(
        state.http, state.settings.service_urls(), state.settings.readiness_timeout
    )
    body = {"status": "ready" if ready else "not ready", "services": services}
    return JSONResponse(body, status_code=200 if ready else 503)


@system.get("/openapi.json", include_in_schema=False)
async def openapi(request: Request) -> JSONResponse:
    """The gateway's document merged with every service's (cached a few seconds)."""
    merged: MergedOpenAPI = request.app.state.openapi
    base: dict[str, Any] = request.app.openapi()
    return JSONResponse(await merged.document(base))


@proxy.api_route("/api/v1/{path:path}", methods=PROXY_METHODS)
async def forward(request: Request) -> Response:
    """Forward `/api/v1/<area>/…` to the service that owns the area."""
    area = area_of(request.url.path)
    service = service_for(area) if area else None
    if service is None or area in GATEWAY_AREAS:
        raise Problem(404, "NOT_FOUND", "Not found", detail=f"No API at {request.url.path}.")
    gateway: Proxy = request.app.state.proxy
    return await gateway.forward(request, service)
