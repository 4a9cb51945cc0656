"""Which service owns which API area, and which headers cross the gateway (pure, no I/O)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

# /api/v1/<area>/... → the service that owns the area. `ops` is answered by the gateway itself.
ROUTES: Mapping[str, str] = {
    "users": "user",
    "products": "inventory",
    "orders": "order",
    "payments": "payment",  # payment lookup (admin); architecture.md, not yet in api.md
    "notifications": "notify",
    "recommendations": "analytics",
    "promotions": "analytics",
    "reports": "analytics",
    "audit": "analytics",
    "shipments": "shipping",
    "returns": "order",  # the returns queue; an order's own returns are under orders/
}
GATEWAY_AREAS = frozenset({"ops"})
SERVICES: tuple[str, ...] = (
    "user",
    "inventory",
    "order",
    "payment",
    "notify",
    "analytics",
    "shipping",
)
API_PREFIX = "/api/v1/"

# RFC 9110 §7.6.1 hop-by-hop fields, plus the old `keep-alive`/`proxy-connection`.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
# Recomputed by the client (host, length) or set by the gateway itself.
REQUEST_DROP = frozenset({"host", "content-length", "x-forwarded-proto", "x-forwarded-host"})
# The gateway's server adds its own `date` and `server`: the upstream's would be duplicates.
RESPONSE_DROP = frozenset({"date", "server"})


def area_of(path: str) -> str | None:
    """`/api/v1/orders/123` → `orders`; None for paths outside the API."""
    if not path.startswith(API_PREFIX):
        return None
    area = path[len(API_PREFIX) :].split("/", 1)[0]
    return area or None


def service_for(area: str) -> str | None:
    """The owning service of an area, None when the gateway does not know it."""
    return ROUTES.get(area)


def _connection_tokens(headers: Iterable[tuple[str, str]]) -> set[str]:
    """Fields named in `Connection:` are hop-by-hop too (RFC 9110 §7.6.1)."""
    tokens: set[str] = set()
    for name, value in headers:
        if name.lower() == "connection":
            tokens |= {t.strip().lower() for t in value.split(",") if t.strip()}
    return tokens


def end_to_end(
    headers: Iterable[tuple[str, str]], drop: Iterable[str] = ()
) -> list[tuple[str, str]]:
    """The headers without hop-by-hop fields and without `drop` (names compared lower-case)."""
    pairs = list(headers)
    excluded = HOP_BY_HOP | _connection_tokens(pairs) | {d.lower() for d in drop}
    return [(k, v) for k, v in pairs if k.lower() not in excluded]
