"""No path past the gateway (issue 16, api.md "Edge rules → Paths"): dot segments, encoded
slashes and dots (double-encoded too), backslashes, NULs and path parameters are refused with
400 `INVALID_PATH` before any routing, and no spelling reaches a service's `/internal/*`,
`/metrics`, `/docs` or `/openapi.json`.

The targets go out byte for byte (`raw_request`): httpx resolves `..` before sending, which would
test the client instead of the gateway.
"""

from __future__ import annotations

import pytest

from devkit.gateway_testing import RawResponse, raw_request

from .conftest import Secure

pytestmark = [pytest.mark.security, pytest.mark.asyncio(loop_scope="package")]

PM = "/internal/users/{user}/payment-methods/{pm}"
UP = "/api/v1/users/../../.."
# (raw target, expected status). {user} and {pm} are a real customer's ids.
SPELLINGS: list[tuple[str, int]] = [
    # the two attacks of the issue
    (UP + PM, 400),
    (UP + "/metrics", 400),
    # a service's own documents
    (UP + "/openapi.json", 400),
    (UP + "/docs", 400),
    ("/api/v1/products/../../metrics", 400),
    ("/api/v1/orders/../../../internal/orders", 400),
    # single dots, a trailing `..`
    ("/api/v1/users/./me", 400),
    ("/api/v1/users/me/..", 400),
    # encoded slashes and dots, any case, double-encoded
    ("/api/v1/users/..%2f..%2f..%2f" + PM[1:], 400),
    ("/api/v1/users/..%2F..%2F..%2Fmetrics", 400),
    ("/api/v1/users/%2e%2e/%2e%2e/%2e%2e" + PM, 400),
    ("/api/v1/users/%2E%2E/%2E%2E/%2E%2E/metrics", 400),
    ("/api/v1/users/.%2e/.%2e/.%2e/openapi.json", 400),
    ("/api/v1/users/%2e%2e%2f%2e%2e%2f%2e%2e%2fmetrics", 400),
    ("/api/v1/users/%252e%252e/%252e%252e/%252e%252e/metrics", 400),
    ("/api/v1/users/..%252f..%252f..%252f" + PM[1:], 400),
    ("/api/v1/users/%252E%252E%252Fmetrics", 400),
    # backslashes, raw and encoded
    ("/api/v1/users/..\\..\\..\\metrics", 400),
    ("/api/v1/users/..%5c..%5c..%5c" + PM[1:], 400),
    ("/api/v1/users/..%5C..%5C..%5Cmetrics", 400),
    ("/api/v1/users/..%255c..%255cmetrics", 400),
    # NULs, encoded and double-encoded (a raw NUL: see test_a_raw_nul_never_reaches_the_app)
    ("/api/v1/users/me%00", 400),
    ("/api/v1/users/me%2500/../../../metrics", 400),
    # path parameters, empty segments, overlong UTF-8 dots, a broken escape
    ("/api/v1/users/..;/..;/..;/metrics", 400),
    ("/api/v1/users/me;x=1", 400),
    ("/api/v1//users/me", 400),
    ("/api/v1/users/%c0%ae%c0%ae/%c0%ae%c0%ae/%c0%ae%c0%ae/metrics", 400),
    ("/api/v1/users/%u002e%u002e/metrics", 400),
    # plain paths outside the API: nothing there
    (PM, 404),
    ("/api/v1/internal/users/{user}/payment-methods/{pm}", 404),
]
WHO = ["anonymous", "customer"]


def assert_nothing_leaked(response: RawResponse) -> None:
    body = response.body
    assert b"pm_card_" not in body, "a provider token left the shop"
    assert b"# HELP " not in body and b"# TYPE " not in body, "a service's metrics leaked"
    assert b'"openapi"' not in body and b"swagger-ui" not in body, "a service's docs leaked"


def target_of(spelling: str, secure: Secure) -> bytes:
    customer = secure.customer
    return spelling.format(user=customer.user_id, pm=customer.payment_method_ids[0]).encode()


@pytest.mark.parametrize("who", WHO)
@pytest.mark.parametrize(("spelling", "status"), SPELLINGS)
async def test_no_spelling_gets_past_the_gateway(
    secure: Secure, spelling: str, status: int, who: str
) -> None:
    response = await raw_request(
        str(secure.client.base_url), target_of(spelling, secure), secure.headers(who)
    )
    assert response.status == status, (spelling, who, response.status, response.body[:300])
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers.get("x-request-id")
    assert response.headers.get("x-content-type-options") == "nosniff"
    if status == 400:
        assert b'"INVALID_PATH"' in response.body, response.body[:300]
    assert_nothing_leaked(response)


@pytest.mark.parametrize("who", WHO)
async def test_a_raw_nul_never_reaches_the_app(secure: Secure, who: str) -> None:
    """uvicorn refuses a raw NUL itself (400, plain text); the gateway's check would too."""
    target = target_of("/api/v1/users/me\x00/../../.." + PM, secure)
    response = await raw_request(str(secure.client.base_url), target, secure.headers(who))
    assert response.status == 400
    assert_nothing_leaked(response)


@pytest.mark.parametrize("who", WHO)
async def test_the_api_still_answers_at_its_plain_paths(secure: Secure, who: str) -> None:
    """The strict check leaves the legitimate spellings alone (`.well-known` is no dot segment)."""
    jwks = await raw_request(
        str(secure.client.base_url), b"/api/v1/users/.well-known/jwks.json", secure.headers(who)
    )
    assert jwks.status == 200
    me = await raw_request(str(secure.client.base_url), b"/api/v1/users/me", secure.headers(who))
    assert me.status == (200 if who == "customer" else 401)
    products = await raw_request(
        str(secure.client.base_url), b"/api/v1/products?limit=1", secure.headers(who)
    )
    assert products.status == 200
