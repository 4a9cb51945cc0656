"""The gateway's authentication hook: runs before a request is forwarded.

Services verify the `Authorization` bearer token themselves (kit.auth, against the user service's
JWKS), so by default the gateway forwards every request as is. With `GATEWAY_VERIFY_JWT=true` it
also verifies at the edge, with the verifier kit's app factory installs
(`app.state.token_verifier`): a request carrying a token that does not verify is answered 401
`UNAUTHENTICATED` here and never reaches a service; requests without a token still pass (the
owning service decides whether its route needs one). Role checks and `AccessDenied` at the edge
would go here too.
"""

from __future__ import annotations

import structlog
from fastapi import Request

from gateway_service.proxy import Authenticator
from gateway_service.settings import GatewaySettings
from kit.auth import InvalidToken
from kit.auth.deps import token_verifier
from kit.errors import unauthenticated

log = structlog.get_logger("gateway.auth")


async def forward_as_is(request: Request) -> None:
    """Let every request through; the owning service decides."""
    return None


async def verify_bearer(request: Request) -> None:
    """Refuse a request whose bearer token does not verify; let one without a token through."""
    header = request.headers.get("authorization")
    if not header:
        return
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthenticated("The Authorization header must be 'Bearer <token>'.")
    try:
        request.state.principal = await token_verifier(request).verify(token.strip())
    except InvalidToken as exc:
        log.info("gateway.invalid_token", reason=exc.reason, path=request.url.path)
        raise unauthenticated("The access token is invalid or expired.") from exc


def authenticator(settings: GatewaySettings) -> Authenticator:
    """The hook for these settings."""
    return verify_bearer if settings.verify_jwt else forward_as_is
