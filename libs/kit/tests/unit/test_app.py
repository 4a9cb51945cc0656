"""The factory: state it sets up, the wrapped lifespan, Problems from middleware."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from kit.app import create_app
from kit.auth import TokenVerifier
from kit.errors import Problem
from kit.health import add_readiness_check

pytestmark = pytest.mark.unit


async def test_state_and_lifespan(settings: object) -> None:
    events: list[str] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        events.append("start")

        async def ready() -> bool:
            return True

        add_readiness_check(app, "mongo", ready)
        yield
        events.append("stop")

    from kit.settings import ServiceSettings

    assert isinstance(settings, ServiceSettings)
    app = create_app(settings, title="demo", lifespan=lifespan, version="1.2.3")
    assert app.state.settings is settings
    assert isinstance(app.state.token_verifier, TokenVerifier)
    assert app.state.token_verifier.audience == settings.jwt_audience
    assert app.openapi()["info"] == {"title": "demo", "version": "1.2.3"}
    async with app.router.lifespan_context(app):
        assert events == ["start"]
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            body = (await client.get("/readyz")).json()
        # No user service answers here: the process knows no revoked tokens yet, so it takes
        # none and is not ready for traffic (kit.auth.revocation).
        assert body["checks"] == {"mongo": True, "token_versions": False}
    assert events == ["start", "stop"]


class Refuses:
    """A middleware that refuses every request with a Problem (like an edge check)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            raise Problem(403, "FORBIDDEN", "Forbidden", "Not from here.")
        await self.app(scope, receive, send)


async def test_problem_raised_by_a_middleware_is_rendered(settings: object) -> None:
    from kit.settings import ServiceSettings

    assert isinstance(settings, ServiceSettings)
    app = create_app(settings, title="demo")
    app.add_middleware(Refuses)  # the outermost user middleware
    # Starlette re-raises after its last-resort handler answered (for the server's log).
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/healthz")
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "FORBIDDEN"
