"""HTTP routes of the user service, under `/api/v1/users` (reached through the gateway)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from kit.auth.signing import jwks_document
from kit.models import ResponseModel
from user_service.deps import DepsDep

router = APIRouter(prefix="/api/v1/users", tags=["users"])

# Verifiers refetch on an unknown `kid` anyway; a short cache spares the service the rest.
JWKS_CACHE_CONTROL = "public, max-age=300"


class PublicJwk(ResponseModel):
    """One RSA public key (RFC 7517): public members only."""

    kty: str
    n: str
    e: str
    kid: str
    use: str
    alg: str


class Jwks(ResponseModel):
    """The keys that verify the service's access tokens."""

    keys: list[PublicJwk]


@router.get("/.well-known/jwks.json", response_model=Jwks)
async def jwks(deps: DepsDep, response: Response) -> Jwks:
    """The public keys that verify access tokens (anyone may fetch them)."""
    response.headers["Cache-Control"] = JWKS_CACHE_CONTROL
    return Jwks.model_validate(jwks_document([deps.signing_key]))


ROUTERS = [router]
