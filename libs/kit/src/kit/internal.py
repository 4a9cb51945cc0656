"""Calls between the shop's own processes: the internal credential.

Services listen where the gateway and their peers can reach them, so a request that arrives at a
service port directly must get no more than it would through the gateway (api.md, "Edge rules").
Two things are therefore believed only from a caller that presents the shared internal credential
(`INTERNAL_TOKEN`, held by the gateway and every service) in `X-Internal-Token`:

- the `/internal/*` routes (`dependencies=[RequireInternal]` on their router): 401 without it;
- the client address the gateway vouches for in `X-Client-Ip` (`kit.request_context.client_ip`).

An empty credential (nothing configured) admits nobody: internal routes then answer 401 to every
caller, which fails closed. `SHOP_ENV=prod` refuses a placeholder value at start-up (kit.settings).
"""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import Depends, Request
from starlette.requests import HTTPConnection

from kit.errors import Problem
from kit.settings import ServiceSettings

INTERNAL_TOKEN_HEADER = "X-Internal-Token"
# The client address as the gateway resolved it (believed only with the credential).
CLIENT_IP_HEADER = "X-Client-Ip"
# What a client may never send through the gateway: only the gateway itself sets these.
EDGE_ONLY_HEADERS = frozenset({INTERNAL_TOKEN_HEADER.lower(), CLIENT_IP_HEADER.lower()})


def internal_headers(settings: ServiceSettings) -> dict[str, str]:
    """The header a service or the gateway sends on a call to another service."""
    token = settings.internal_token.get_secret_value()
    return {INTERNAL_TOKEN_HEADER: token} if token else {}


def _expected_token(connection: HTTPConnection) -> str:
    settings = (
        getattr(connection.app.state, "settings", None) if "app" in connection.scope else None
    )
    secret = getattr(settings, "internal_token", None)
    return str(secret.get_secret_value()) if secret is not None else ""


def is_internal_caller(connection: HTTPConnection) -> bool:
    """True when the request carries this deployment's internal credential."""
    expected = _expected_token(connection)
    presented = connection.headers.get(INTERNAL_TOKEN_HEADER, "")
    if not expected or not presented:
        return False
    return hmac.compare_digest(presented.encode(), expected.encode())


async def require_internal(request: Request) -> None:
    """401 `UNAUTHENTICATED` unless the caller presents the internal credential."""
    if not is_internal_caller(request):
        raise Problem(
            401,
            "UNAUTHENTICATED",
            "Unauthenticated",
            "This route is for the shop's own services.",
        )


RequireInternal: Any = Depends(require_internal)
