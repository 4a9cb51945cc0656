"""The gateway's role table and security headers (pure)."""

from __future__ import annotations

import pytest
from gateway_service.security import is_identity_header, required_roles, security_headers

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("method", "path", "roles"),
    [
        ("GET", "/api/v1/users", ("Admin",)),
        ("POST", "/api/v1/users/", ("Admin",)),
        ("PATCH", "/api/v1/users/u-1", ("Admin",)),
        ("DELETE", "/api/v1/users/u-1", ("Admin",)),
        ("GET", "/api/v1/users/u-1", None),  # Admin or own: the service decides
        ("GET", "/api/v1/users/me", None),
        ("POST", "/api/v1/users/login", None),
        ("POST", "/api/v1/users/me/details", None),
        ("POST", "/api/v1/products", ("Admin",)),
        ("GET", "/api/v1/products", None),
        ("POST", "/api/v1/products/p-1/stock", ("Admin",)),
        ("POST", "/api/v1/orders", ("Customer",)),
        ("POST", "/api/v1/orders/o-1/approve", ("Manager", "Admin")),
        ("POST", "/api/v1/orders/o-1/cancel", None),
        ("GET", "/api/v1/reports/sales", ("Manager", "Admin")),
        ("HEAD", "/api/v1/audit", ("Manager", "Admin")),
        ("GET", "/api/v1/recommendations", ("Customer",)),
        ("GET", "/api/v1/ops/dlq", ("Admin",)),
        ("POST", "/api/v1/ops/dlq/order/redrive", ("Admin",)),
        ("POST", "/api/v1/ops/dlq", None),  # no such route: the gateway's 404
    ],
)
def test_role_table_follows_api_md(method: str, path: str, roles: tuple[str, ...] | None) -> None:
    assert required_roles(method, path) == roles


def test_identity_headers_and_security_headers() -> None:
    assert is_identity_header("X-User-Id") and is_identity_header("x-user-role")
    assert not is_identity_header("x-request-id")
    api = security_headers("/api/v1/users/me", hsts=False)
    assert api["Content-Security-Policy"].startswith("default-src 'none'")
    assert "Strict-Transport-Security" not in api
    assert "max-age" in security_headers("/", hsts=True)["Strict-Transport-Security"]
    docs = security_headers("/docs", hsts=False)["Content-Security-Policy"]
    assert "script-src 'self';" in docs and "cdn.jsdelivr.net" not in docs
