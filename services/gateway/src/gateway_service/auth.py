"""The gateway's guard: runs before a request is forwarded.

Every bearer token is verified at the edge with kit's verifier (`app.state.token_verifier`,
RS256 only, against the user service's JWKS): a token that does not verify (`alg=none`, HS256
signed with the public key, expired, wrong `aud`/`iss`, tampered) is a 401 `UNAUTHENTICATED`
here and never reaches a service. Requests without a token pass, unless `security.ROLE_RULES`
restricts the route: then 401 without a token, 403 `FORBIDDEN` (and an `AccessDenied` event)
for another role. The original bearer token is forwarded unchanged; services verify it again.
"""

from __future__ import annotations

import structlog
from fastapi import Request

from gateway_service.audit import DeniedAudit
from gateway_service.security import required_roles
from kit.auth import InvalidToken, Principal
from kit.auth.deps import token_verifier
from kit.errors import Problem, forbidden

log = structlog.get_logger("gateway.auth")


def _unauthenticated(detail: str) -> Problem:
    return Problem(
        401,
        "UNAUTHENTICATED",
        "Unauthenticated",
        detail,
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


async def verified_principal(request: Request) -> Principal | None:
    """The caller of a valid bearer token, None without one; 401 for one that does not verify."""
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthenticated("The Authorization header must be 'Bearer <token>'.")
    try:
        principal = await token_verifier(request).verify(token.strip())
    except InvalidToken as exc:
        log.info("gateway.invalid_token", reason=exc.reason, path=request.url.path)
        raise _unauthenticated("The access token is invalid or expired.") from exc
    request.state.principal = principal
    return principal


async def guard(request: Request) -> None:
    """Verify the token, then apply the role table (401 / 403 + AccessDenied)."""
    principal = await verified_principal(request)
    roles = required_roles(request.method, request.url.path)
    if roles is None:
        return
    if principal is None:
        raise Problem(
            401,
            "UNAUTHENTICATED",
            "Unauthenticated",
            "A bearer access token is required.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if principal.role not in roles:
        audit(request).denied(request, principal, roles)
        raise forbidden()


def audit(request: Request) -> DeniedAudit:
    result: DeniedAudit = request.app.state.audit
    return result


def upstream_forbidden(request: Request) -> None:
    """A service refused the caller (403: its own role or ownership rule): audited too."""
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is not None:
        audit(request).denied(request, principal, ())
