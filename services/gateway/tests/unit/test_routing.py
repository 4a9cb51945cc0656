"""The route table and the header rules of the gateway."""

from __future__ import annotations

import pytest
from gateway_service.routing import (
    ROUTES,
    SERVICES,
    area_of,
    end_to_end,
    service_for,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("path", "area"),
    [
        ("/api/v1/orders/123", "orders"),
        ("/api/v1/users", "users"),
        ("/api/v1/users/.well-known/jwks.json", "users"),
        ("/api/v1/", None),
        ("/healthz", None),
    ],
)
def test_area_of_path(path: str, area: str | None) -> None:
    assert area_of(path) == area


def test_every_area_belongs_to_a_known_service() -> None:
    assert set(ROUTES.values()) <= set(SERVICES)
    assert service_for("recommendations") == service_for("audit") == "analytics"
    assert service_for("shipments") == "shipping"
    assert service_for("returns") == service_for("orders") == "order"
    assert service_for("nope") is None


def test_hop_by_hop_and_connection_listed_headers_are_dropped() -> None:
    headers = [
        ("Connection", "keep-alive, X-Secret-Hop"),
        ("X-Secret-Hop", "1"),
        ("Transfer-Encoding", "chunked"),
        ("Keep-Alive", "timeout=5"),
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2"),
        ("Host", "gateway"),
        ("Accept", "application/json"),
    ]
    assert end_to_end(headers, drop={"Host"}) == [
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2"),
        ("Accept", "application/json"),
    ]
