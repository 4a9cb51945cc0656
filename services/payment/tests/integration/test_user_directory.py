"""The payment service's card lookup against a real HTTP server standing in for the user service:
one pooled connection for every lookup, the internal credential on each, ids kept in their
path segment."""

from __future__ import annotations

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from payment_service.users import UserDirectory

from devkit.testing import serving

pytestmark = pytest.mark.integration

METHOD = {"paymentMethodId": "pm1", "token": "pm_card_ok", "brand": "visa", "last4": "4242"}


def user_service_double(seen: list[tuple[int, str | None, bytes]]) -> FastAPI:
    app = FastAPI()

    @app.get("/{rest:path}")
    async def lookup(rest: str, request: Request) -> JSONResponse:
        port = request.client.port if request.client else 0
        seen.append((port, request.headers.get("x-internal-token"), request.scope["raw_path"]))
        if request.scope["raw_path"] == b"/internal/users/u1/payment-methods/pm1":
            return JSONResponse(METHOD)
        return JSONResponse({"code": "PAYMENT_METHOD_NOT_FOUND"}, status_code=404)

    return app


async def test_lookups_share_one_connection_and_carry_the_credential() -> None:
    seen: list[tuple[int, str | None, bytes]] = []
    async with serving(user_service_double(seen)) as url:
        directory = UserDirectory(url, headers={"X-Internal-Token": "t-1"})
        try:
            for _ in range(5):
                info = await directory.payment_method("u1", "pm1")
                assert info is not None and info.token == "pm_card_ok"
            assert await directory.payment_method("u1", "missing") is None
            assert await directory.payment_method("u1/../../metrics", "pm 1?x") is None
        finally:
            await directory.aclose()
    # A client per lookup opened a new connection (and TLS context) for each of these.
    assert len({port for port, _, _ in seen}) == 1, seen
    assert {token for _, token, _ in seen} == {"t-1"}
    assert seen[-1][2] == b"/internal/users/u1%2F..%2F..%2Fmetrics/payment-methods/pm%201%3Fx"
